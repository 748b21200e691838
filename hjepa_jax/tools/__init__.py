"""Run tools: logs, figures, reports; not part of training or evaluation.

* `monitor`: training.log parsing, health alerts, the training process (launch/monitor.py).
* `events`: scalars of TensorBoard event files (launch/compare_runs.py, launch/visualize.py).
* `figures`: matplotlib panels and curves.
* `maps`: per-patch views of a checkpoint: attention, PCA of features, per-level prediction error.
* `overlay`: mask images (pure numpy; train.py logs them).

Nothing is imported here, so each tool pays only for what it uses: `monitor` and `events` start
without jax or TensorFlow next to a busy training process.
"""
