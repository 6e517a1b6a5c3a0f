"""Interrupts as human decisions: an approval per interrupt, exactly one decision wins.

service.py  ApprovalService: the run hooks that record approvals, search, get, decide; expiry
"""
