"""musicjudge.lm"""
