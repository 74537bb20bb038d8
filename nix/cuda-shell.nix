# Training on an NVIDIA GPU: shell.nix with TensorFlow built for CUDA (unfree: CUDA and cuDNN).
#
#   nix-shell nix/cuda-shell.nix
#   luigi --module wikiluigi Train --run-name startrek --manifests '["startrek"]' --base-model 124M \
#         --steps 1000 --batch-size 2 --local-scheduler
#
# The shell hook prints the GPUs TensorFlow sees; an empty list means the driver's libraries were not found
# (on NixOS enable hardware.nvidia; elsewhere add the driver's folder to LD_LIBRARY_PATH).
{ pkgs ? import <nixpkgs> {
    config = {
      allowUnfree = true;
      cudaSupport = true;
    };
  }
}:

import ./shell.nix {
  inherit pkgs;
  cuda = true;
}
