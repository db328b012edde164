"""Tables and statistics of a comparison: JSON, CSV and a paper-like markdown table (the
figures are drawn by :mod:`..figures`). One module per concern: :mod:`.frames`,
:mod:`.statistics`, :mod:`.claims`, :mod:`.aggregates`, :mod:`.labels`, :mod:`.markdown`,
:mod:`.output` (``write_report``).

Definitions (accuracies in [0, 1]; tables print percent):
- reference forgetting of a task (the reference paper): accuracy of a model trained on
  that task alone (same model, epochs, seed) minus the task's accuracy after all tasks;
  per task, average and maximum over the tasks.
- Avalanche forgetting / BWT: Avalanche's ``StreamForgetting`` / ``StreamBWT`` (accuracy
  right after learning a task minus after all tasks, averaged over earlier tasks), and the
  maximum of ``ExperienceForgetting``.
- over seeds: mean, sample std (ddof=1) and the 95 % confidence half-width of the mean
  from Student's t distribution (n-1 degrees of freedom); none when n < 2. Tables and
  figures show the CI for n >= 3 seeds and the std for n = 2 (a t interval with one degree
  of freedom is 12.7 std wide).
- AlphaMAS vs MAS: paired t-test (``scipy.stats.ttest_rel``, two-sided) on the seeds both
  ran, in the main task order.
- order sensitivity: for the moved pair (pair 0, the reference's task (1,2)), its final
  accuracy and reference forgetting per placement (mean over seeds), their spread
  (max - min over placements) and std over placements (ddof=1); and per seed the spread of
  its final accuracy, AlphaMAS vs MAS by paired t-test.
- seed claims: per AlphaMAS row, "lower average and maximum forgetting than MAS" and "less
  spread over placements": confirmed (every difference negative at p < 0.05),
  contradicted (one positive at p < 0.05) or not confirmed.
- importance totals: S_t = sum of a task's MAS importances, per task (training position)
  from the AlphaMAS/MAS records, and max/min S_t per run.
- rows: the AlphaMAS rows, the baselines, then the bounds (Naive, Joint); each label says
  which hyperparameter it ran with (chosen on validation, default or fixed).
"""
from __future__ import annotations

from alpha_mas_avalanche.experiment.report.frames import METRICS, runs_table, summarize
from alpha_mas_avalanche.experiment.report.labels import display_label, table_order
from alpha_mas_avalanche.experiment.report.markdown import markdown_table
from alpha_mas_avalanche.experiment.report.output import write_report
from alpha_mas_avalanche.experiment.report.statistics import mean_std_ci, paired_comparisons

__all__ = ["METRICS", "runs_table", "summarize", "display_label", "table_order", "markdown_table",
           "write_report", "mean_std_ci", "paired_comparisons"]
