"""musicjudge.reward"""
