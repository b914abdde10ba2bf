"""The file names of eval's output folders, in one place.

An `eval.run` folder (``--out``): `eval.score` writes it, `eval.deception` adds its rate to it, `eval.compare`
and `eval.reproduce` read it. The artist classifier's ``--workdir`` and the reproduction's ``--out`` follow.
"""

# ---------------------------------------------------------------------------------- an eval.run folder
PAIRS_CSV = "pairs.csv"  # one row per scored pair (records.CsvLog)
SKIPPED_CSV = "skipped.csv"  # pairs left out, with the reason
RUN_JSON = "run.json"  # the settings that fix the results, checked on resume
SUMMARY_JSON, SUMMARY_MD = "summary.json", "summary.md"
IST_JSON, IST_MD = "ist.json", "ist.md"  # the paper's IST table
EXTREMES_NPZ = "extremes.npz"  # thumbnails of the highest/lowest-loss pairs, kept across resumes
FIGURES_DIR = "figures"
SCATTER_BOUND_PNG = "scatter_bound.png"  # in FIGURES_DIR: classic loss against its bound
HIST_CLASSIC_PNG, HIST_BALANCED_PNG = "hist_classic.png", "hist_balanced.png"  # in FIGURES_DIR
IST_PNG = "ist.png"  # in FIGURES_DIR: per-style spread of both losses
EXTREMES_PNG = "extremes_{loss}.png"  # in FIGURES_DIR, per tracked loss: its lowest and highest pairs
DECEPTION_JSON, DECEPTION_MD = "deception.json", "deception.md"  # written by eval.deception

# ------------------------------------------------------------------ the artist classifier's --workdir
CLASSIFIER_NPZ = "classifier.npz"
CLASSIFIER_CONFIG_JSON = "config.json"
HELDOUT_JSON, HELDOUT_MD = "heldout.json", "heldout.md"

# --------------------------------------------------------------------------- eval.reproduce's --out
REPRODUCE_PAIRS_DIR = "pairs"  # every evaluation's pairs.csv, one file per run
WORK_EVAL_DIR, WORK_TRAIN_DIR = "eval", "train"  # in --workdir: the eval.run folders and training runs
SPLIT_CSV = "split.csv"
RUNS_CSV = "runs.csv"
PER_STYLE_CSV = "per_style.csv"
PEARSON_CSV = "pearson.csv"
RUN_INFO_CSV = "run_info.csv"
PAPER_CSV = "paper.csv"
DISCUSSION_MD = "discussion.md"
OUTPUTS_PNG = "outputs.png"  # in FIGURES_DIR: one held-out photo under every model
IDENTITY_SCATTER_PNG = "identity_scatter_bound.png"  # in FIGURES_DIR: the identity run's SCATTER_BOUND_PNG
CURVES_CSV = "curves.csv"  # every fine-tuning run's logged losses
DECEPTION_CSV = "deception.csv"  # deception rate of every model and pairs set
IMBALANCE_CSV = "imbalance.csv"  # per model and style: the classic loss's magnitude and the share left of it
LOSS_CURVES_PNG = "loss_curves.png"  # in FIGURES_DIR
PER_STYLE_PNG = "per_style_{tag}.png"  # in FIGURES_DIR: balanced loss per style and model, one per pairs set
IMBALANCE_PNG = "imbalance_{tag}.png"  # in FIGURES_DIR: share left against magnitude, one per pairs set
