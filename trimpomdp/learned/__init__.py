"""Learned step routers (TRIM-Agg, TRIM-Seq): features, networks, training environments, PPO training and
the policy files ``agg:FILE`` / ``seq:FILE`` load.

``features`` computes what a router sees (one definition for training, simulation and decoding), ``nets``
holds the torch networks, ``env`` the training environments behind one step interface (the routing
simulator and live decoding), ``train`` runs PPO (stable-baselines3) and ``policy`` reads and runs trained
routers. torch is needed to run a router; training also needs the ``learn`` extra
(``pip install 'trimpomdp[learn]'``).
"""
