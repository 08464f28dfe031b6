"""musicjudge.probe"""
