"""The training backends: TensorFlow (gpt-2-simple's model, gpt2.py) and PyTorch (torch_model.py,
torch_backend.py), and the conversion of checkpoints between them (torch_convert.py)."""
