"""musicjudge.pseudolabel"""
