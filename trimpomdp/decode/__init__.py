"""Routed decoding with real models: problems, answers, backends, PRMs, the loop and its traces."""
