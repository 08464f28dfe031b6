"""musicjudge.annotate"""
