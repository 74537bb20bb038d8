# The pipeline's shell: Python 3.11 with wikiluigi's dependencies (TensorFlow on the CPU) and pandoc.
#
#   nix-shell nix/shell.nix
#   luigi --module wikiluigi Wikipedia --manifest demo --local-scheduler
#
# Everything comes from nixpkgs except gpt-2-simple (not packaged there) and wikiluigi itself: the shell
# hook puts both in a virtualenv, .venv-nix/ at the project root, that sees the nix packages
# (pip install --no-deps: nothing else comes from PyPI). pandoc is nixpkgs' (pypandoc finds it on PATH)
# instead of the pypandoc-binary wheel that pip installs. cuda-shell.nix is this shell with CUDA TensorFlow.
{ pkgs ? import <nixpkgs> { }
, python ? pkgs.python311
, cuda ? false
}:

let
  root = toString ./..;
  pythonWithPackages = python.withPackages (ps: with ps; [
    # the pipeline
    luigi
    pyyaml
    requests
    requests-cache
    pypandoc
    # training and generation (gpt-2-simple's own dependencies included: regex, tqdm, toposort, numpy)
    tensorflow-bin
    tokenizers
    matplotlib
    numpy
    regex
    tqdm
    toposort
    # tests
    pytest
    pytest-timeout
    psutil
  ]);
in
pkgs.mkShell {
  name = if cuda then "wikiluigi-cuda" else "wikiluigi";
  packages = [
    pythonWithPackages
    pkgs.pandoc
    pkgs.git
  ];

  shellHook = ''
    venv=${root}/.venv-nix
    if [ ! -x "$venv/bin/python" ]; then
      ${pythonWithPackages}/bin/python -m venv --system-site-packages "$venv"
      "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps gpt-2-simple==0.8.1
      "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --editable ${root}
    fi
    source "$venv/bin/activate"
    export TF_CPP_MIN_LOG_LEVEL=''${TF_CPP_MIN_LOG_LEVEL:-2}
  '' + pkgs.lib.optionalString cuda ''
    # NixOS puts the NVIDIA driver's libraries here; elsewhere, point this at the host's driver.
    export LD_LIBRARY_PATH=/run/opengl-driver/lib''${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    python -c 'import tensorflow as tf; print("GPUs:", tf.config.list_physical_devices("GPU"))' 2>/dev/null || true
  '';
}
