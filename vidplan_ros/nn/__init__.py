"""Torch modules and their training (encoder/decoder, planner, world model, inverse dynamics)."""
