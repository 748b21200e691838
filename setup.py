"""Packaging for hjepa-jax.

Two dependency profiles are supported and exercised by ``.ci/run``:

* newest:     ``pip install -e ".[test]"``
              (resolves to the newest releases, e.g. jax 0.10.x, flax 0.12.x)
* jax-metal:  ``pip install -c constraints/jax-metal.txt -e ".[test]"``
              (jax==jaxlib==0.5.0, flax 0.10.4, optax 0.2.5; the versions that
              Apple's jax-metal 0.1.1 plugin works with; see the constraints file)

The version ranges below are therefore deliberately wide: each lower bound is
the jax-metal pin, each upper bound sits just above the newest tested release.
Works with a setup.py-only layout for both legacy (``setup.py develop``) and
PEP 660 editable installs (pip >= 21.3 with setuptools >= 64).
"""

from setuptools import find_packages, setup

# TensorFlow is only used for tf.data / tfds input pipelines and TensorBoard
# summaries, never for compute on an accelerator: the CPU-only wheel is
# enough (and much smaller) everywhere it exists. macOS ships no
# tensorflow-cpu wheels, so there the regular "tensorflow" package is used.
_TF_RANGE = ">=2.16,<2.22"

INSTALL_REQUIRES = [
  "jax>=0.5.0,<0.12",
  "jaxlib>=0.5.0,<0.12",
  "flax>=0.10.4,<0.13",
  "optax>=0.2.5,<0.3",
  "orbax-checkpoint>=0.11.5,<0.13",
  f"tensorflow-cpu{_TF_RANGE}; platform_system != 'Darwin'",
  f"tensorflow{_TF_RANGE}; platform_system == 'Darwin'",
  "tensorboard>=2.16,<2.22",
  "tensorflow-datasets>=4.9.4,<5",
  "ml-collections>=0.1.1",
  "clu>=0.0.12,<0.1",
  "numpy>=1.26,<3",
  "absl-py>=1.0",
  "scikit-learn>=1.3",
  "pillow>=9.0",
  "matplotlib>=3.7",
]

EXTRAS_REQUIRE = {
  "test": [
    "pytest>=7.0",
    "ruff==0.17.6",  # formatter + lint (ruff.toml); pinned so `ruff format --check` is stable
  ],
}

setup(
  name="hjepa-jax",
  version="0.1.0",
  description=(
    "H-JEPA (hierarchical joint-embedding predictive architecture) self-supervised ViT pretraining in JAX/Flax"
  ),
  long_description=("Functional JAX/Flax research codebase for H-JEPA self-supervised ViT pretraining. See README.md."),
  long_description_content_type="text/plain",
  license="Apache-2.0",
  python_requires=">=3.10",
  packages=find_packages(include=["hjepa_jax", "hjepa_jax.*"]),
  include_package_data=True,
  # Files the code reads at run time live inside the package (e.g. hjepa_jax/data/imagenet100_classes.txt),
  # so a regular, non-editable `pip install .` has them; .ci/run checks one from outside the checkout.
  package_data={
    "hjepa_jax": [
      "*.json",
      "*.yaml",
      "*.yml",
      "*.txt",
      "*.md",
      "*/*.json",
      "*/*.yaml",
      "*/*.yml",
      "*/*.txt",
      "*/*.md",
    ],
  },
  entry_points={"console_scripts": ["hjepa-train=hjepa_jax.launcher:run"]},
  install_requires=INSTALL_REQUIRES,
  extras_require=EXTRAS_REQUIRE,
  zip_safe=False,
  classifiers=[
    "Programming Language :: Python :: 3",
    "Programming Language :: Python :: 3.10",
    "Programming Language :: Python :: 3.11",
    "Programming Language :: Python :: 3.12",
    "Intended Audience :: Science/Research",
    "Topic :: Scientific/Engineering :: Artificial Intelligence",
  ],
)
