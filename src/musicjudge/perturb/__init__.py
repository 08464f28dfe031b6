"""musicjudge.perturb"""
