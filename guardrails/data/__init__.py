"""Data files the guards load with importlib.resources (labelled examples, policies); no code lives here."""
