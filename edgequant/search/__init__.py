"""The recovery ladder (ladder.py): the one accuracy search, for user models and the study."""
