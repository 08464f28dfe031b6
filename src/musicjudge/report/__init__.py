"""musicjudge.report"""
