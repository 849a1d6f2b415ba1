"""Mend's shared platform library. It knows no service: services plug in through entry points."""
