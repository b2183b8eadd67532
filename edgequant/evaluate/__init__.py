"""Stage 4 of the flow: accuracy of Keras and TFLite models, and what each artifact contains."""
