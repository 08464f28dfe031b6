"""musicjudge.audio"""
