"""The evaluation harness: closed-loop episodes, corruptions, stage-by-stage diagnosis, reports,
videos and the grounding benchmark. ROS-free."""
