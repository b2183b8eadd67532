"""Stage 2 of the flow: float training (QAT fine-tuning builds on it)."""
