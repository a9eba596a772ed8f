"""Inference backends behind one interface (torch, ONNX Runtime, TensorRT) and export."""
