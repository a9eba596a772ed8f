"""Embedded MuJoCo simulation: scenes, tasks, success checks and scripted experts."""
