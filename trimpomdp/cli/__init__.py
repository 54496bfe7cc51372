"""The ``trimpomdp`` command line (click); each command lives in its own module, loaded lazily."""
