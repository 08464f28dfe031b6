"""musicjudge.bench"""
