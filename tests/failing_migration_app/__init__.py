"""An app whose second migration fails on purpose, installed only by the deployment rollback test.

Its first migration succeeds and changes data in other apps' tables, so the test can prove that
the rollback undoes work that migrate had already committed.
"""
