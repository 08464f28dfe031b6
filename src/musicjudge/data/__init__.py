"""musicjudge.data"""
