"""Every metric name the audits emit, with its direction and a one-line meaning.

Directions: ``higher`` / ``lower`` is better, ``retrain`` (closest to the retrained model is best),
or ``info`` (context, no better direction). ``weights`` also emits per-tensor ``w_*.<name>`` values.
"""
from __future__ import annotations

METRICS: dict[str, tuple[str, str]] = {
    "ua": ("retrain", "unlearning accuracy: 100 − accuracy on the forget set (%)"),
    "ra": ("higher", "accuracy on the retain set (%)"),
    "adjacent_acc": ("higher", "accuracy on the adjacent retain examples: the other fine classes of the forgotten "
                              "class's group (%; sub-class and grouped class-wise forgetting)"),
    "remote_acc": ("higher", "accuracy on the remote retain examples: every retain example not adjacent (%)"),
    "ta": ("higher", "accuracy on the test set; for class-wise forgetting, test examples of the remaining classes (%)"),
    "ta_forget": ("retrain", "class-wise only: accuracy on test examples of the forgotten classes (%)"),
    "mia_efficacy": ("retrain", "SVC confidence attack: % of forget examples predicted non-member"),
    "mia_auc": ("retrain", "loss-threshold attack, forget vs held-out of the same distribution: ROC-AUC (0.5 = cannot tell)"),
    "mia_tpr1": ("retrain", "loss-threshold attack: true-positive rate at 1% false-positive rate (%)"),
    "mia_auc_gap": ("lower", "|mia_auc − retrain's|"),
    "lira_auc": ("retrain", "training-set membership, shadow-model likelihood-ratio attack (LiRA, Carlini et al.), "
                            "forget (members of the original's training set) vs held-out: ROC-AUC"),
    "lira_tpr1": ("retrain", "LiRA membership: true-positive rate at 1% false-positive rate (%)"),
    "lira_auc_gap": ("lower", "|lira_auc − retrain's|"),
    # ulira family (audits/ulira.py): U-LiRA, Hayes et al. 2024 — unlearned vs retrained, not member vs non-member
    "ulira_acc": ("lower", "U-LiRA: accuracy of the per-example likelihood-ratio test telling the method's unlearned "
                           "shadow models from retrained ones on the forget examples (0.5 = indistinguishable from "
                           "retraining, the best; held-out shadow pairs)"),
    "ulira_auc": ("lower", "U-LiRA: ROC-AUC of the same test (0.5 = indistinguishable from retraining)"),
    "ulira_target_acc": ("lower", "U-LiRA applied to this cell's own model vs the retrained reference of the same "
                                  "seed, forget examples: accuracy (0.5 = indistinguishable; retrain's row: 0.5 by "
                                  "construction)"),
    "ulira_target_auc": ("lower", "U-LiRA on this cell's own model vs the retrained reference: ROC-AUC"),
    "ulira_shadows": ("info", "U-LiRA: shadow originals (each also retrained without the forget set and unlearned "
                              "with the method)"),
    "ulira_diverged": ("info", "U-LiRA: shadow unlearning runs that diverged (left out of the attack)"),
    "ulira_models_trained": ("info", "U-LiRA: models this audit call trained (shadow originals and retrains, "
                                     "shared by a scenario and seed's cells, counted where they were trained) "
                                     "plus the unlearning runs of the shadows"),
    "ulira_seconds": ("info", "U-LiRA: wall-clock seconds of this audit call"),
    "ulira_shadow_seconds": ("info", "U-LiRA: seconds the shared shadow originals and retrains took (paid once "
                                     "per scenario and seed)"),
    "rcd": ("higher", "relearning convergence delay: full-batch SGD steps (budget 50) on the forget set until "
                      "forget accuracy ≥ 90% of the original's, after rescaling each normalisation-fed weight "
                      "tensor to the original's norm; median over lr 0.01 × {0.5, 1, 2}; compare with retrain's"),
    "rcd_rescaled": ("info", "number of normalisation-fed weight tensors rescaled to the original's norm before "
                             "relearning (0: no norm layers, no original, or the plain recipe)"),
    "rcd_grid_min": ("info", "smallest RCD over the relearning lr grid"),
    "rcd_grid_max": ("info", "largest RCD over the relearning lr grid"),
    "rcd_reached": ("retrain", "1 if relearning reached the threshold within the budget, else 0 (rcd = budget)"),
    "rcd_rel": ("higher", "(rcd + 1) / (retrain's rcd + 1): 1 = as slow to relearn as retrain"),
    "rcd_loss_rise": ("lower", "max forget loss during relearning minus its start; > 0 flags an unstable relearning"),
    "w_l2_original": ("info", "L2 distance of the parameters from the original model's"),
    "w_cos_original": ("info", "cosine between the parameters and the original model's"),
    "w_l2_retrain": ("info", "L2 distance from the retrained model's parameters (another initialisation)"),
    "forget_quality": ("higher", "TOFU forget quality: KS-test p-value, per-item forget truth ratios vs the retrained model's (1 = like retrain); needs the retrained model"),
    "model_utility": ("higher", "TOFU model utility: harmonic mean of probability, ROUGE-L recall and truth-ratio score on the retain, real-authors and world-facts sets"),
    "forget_prob": ("retrain", "mean exp(−mean answer-token NLL) of the gold forget answers"),
    "forget_rouge": ("retrain", "mean ROUGE-L recall of the greedy answers to the forget questions"),
    "forget_truth_ratio": ("higher", "mean min(R, 1/R), R = P(perturbed)/P(paraphrase) on the forget set; 1 = no preference for the truth"),
    "retain_prob": ("higher", "mean exp(−mean answer-token NLL) of the gold retain answers"),
    "retain_rouge": ("higher", "mean ROUGE-L recall of the greedy answers to the retain questions"),
    "retain_truth_ratio": ("higher", "mean max(0, 1 − R), R = P(perturbed)/P(paraphrase) on the retain set"),
    "ra_prob": ("higher", "real authors: mean P(gold) / (P(gold) + Σ P(perturbed))"),
    "ra_rouge": ("higher", "real authors: mean ROUGE-L recall of the greedy answers"),
    "ra_truth_ratio": ("higher", "real authors: mean max(0, 1 − P(perturbed)/P(gold))"),
    "wf_prob": ("higher", "world facts: mean P(gold) / (P(gold) + Σ P(perturbed))"),
    "wf_rouge": ("higher", "world facts: mean ROUGE-L recall of the greedy answers"),
    "wf_truth_ratio": ("higher", "world facts: mean max(0, 1 − P(perturbed)/P(gold))"),
    "mia_auc_mink": ("retrain", "Min-K% Prob (K = 40%) attack, forget vs holdout: ROC-AUC (1 = forget items recognised, 0.5 = cannot tell)"),
    "privleak": ("retrain", "MUSE PrivLeak: (s − s_r)/s_r × 100 with s = 1 − mia_auc_mink, s_r retrain's; 0 = like retrain, < 0 still memorised, > 0 over-unlearned"),
    "hazard_acc": ("lower", "WMDP-style multiple-choice accuracy on the hazard questions (%); chance = 100/choices"),
    "general_acc": ("higher", "multiple-choice accuracy on the general-knowledge questions (%)"),
    "mmlu_acc": ("higher", "MMLU accuracy (%), lm-eval's mmlu task: argmax of the log-likelihoods of ' A'…' D' "
                           "after the lettered question, mean over all questions (WMDP's utility)"),
    # TOFU family: memorisation (OpenUnlearning exact_memorization / extraction_strength, teacher-forced)
    "forget_em": ("retrain", "exact memorisation: mean fraction of forget answer tokens whose teacher-forced argmax "
                             "is the gold token (final EOS left out)"),
    "forget_es": ("retrain", "extraction strength: mean 1 − k/n over forget answers, k the first position from which "
                             "the teacher-forced argmax reproduces the rest of the answer"),
    "retain_em": ("higher", "exact memorisation on the retain evaluation set"),
    "retain_es": ("higher", "extraction strength on the retain evaluation set"),
    # MUSE family (audits/muse.py)
    "verbmem_f": ("retrain", "MUSE VerbMem: mean ROUGE-L F1 × 100 of the greedy continuation (128 tokens) of each "
                             "verbmem forget prompt vs its ground truth"),
    "knowmem_f": ("retrain", "MUSE KnowMem on the forget QA: mean ROUGE-L F1 × 100 of the greedy (ICL-prompted) answers"),
    "knowmem_r": ("higher", "MUSE KnowMem on the retain QA (utility): mean ROUGE-L F1 × 100"),
    "verbmem_em": ("retrain", "exact memorisation of the verbmem ground truths given their prompts"),
    "verbmem_es": ("retrain", "extraction strength of the verbmem ground truths given their prompts"),
    "mia_auc_minkpp": ("retrain", "Min-K%++ (k = 40%) attack, forget vs holdout documents: ROC-AUC (1 = forget recognised)"),
    "privleak_minkpp": ("retrain", "PrivLeak computed from mia_auc_minkpp instead of mia_auc_mink"),
    # text_mia family (audits/text_mia.py): forget (members) vs holdout (non-members)
    "mia_loss_auc": ("retrain", "text MIA, LOSS attack (mean answer NLL): ROC-AUC (1 = forget items recognised, 0.5 = cannot tell)"),
    "mia_loss_tpr1": ("retrain", "text MIA, loss: true-positive rate at 1% false-positive rate (%)"),
    "mia_loss_tpr01": ("retrain", "text MIA, loss: true-positive rate at 0.1% false-positive rate (%; interpolated below 1/#holdout)"),
    "mia_zlib_auc": ("retrain", "text MIA, zlib attack (NLL / zlib-compressed length of the answer text): ROC-AUC (1 = forget items recognised, 0.5 = cannot tell)"),
    "mia_zlib_tpr1": ("retrain", "text MIA, zlib: true-positive rate at 1% false-positive rate (%)"),
    "mia_zlib_tpr01": ("retrain", "text MIA, zlib: true-positive rate at 0.1% false-positive rate (%; interpolated below 1/#holdout)"),
    "mia_mink_auc": ("retrain", "text MIA, Min-K% Prob attack (k = 40%): ROC-AUC (1 = forget items recognised, 0.5 = cannot tell)"),
    "mia_mink_tpr1": ("retrain", "text MIA, mink: true-positive rate at 1% false-positive rate (%)"),
    "mia_mink_tpr01": ("retrain", "text MIA, mink: true-positive rate at 0.1% false-positive rate (%; interpolated below 1/#holdout)"),
    "mia_minkpp_auc": ("retrain", "text MIA, Min-K%++ attack (k = 40%, token log-probs standardised under the model's next-token distribution): ROC-AUC (1 = forget items recognised, 0.5 = cannot tell)"),
    "mia_minkpp_tpr1": ("retrain", "text MIA, minkpp: true-positive rate at 1% false-positive rate (%)"),
    "mia_minkpp_tpr01": ("retrain", "text MIA, minkpp: true-positive rate at 0.1% false-positive rate (%; interpolated below 1/#holdout)"),
    "mia_ref_auc": ("retrain", "text MIA, reference attack (NLL − the retrained model's NLL; needs the retrained model): ROC-AUC (1 = forget items recognised, 0.5 = cannot tell)"),
    "mia_ref_tpr1": ("retrain", "text MIA, ref: true-positive rate at 1% false-positive rate (%)"),
    "mia_ref_tpr01": ("retrain", "text MIA, ref: true-positive rate at 0.1% false-positive rate (%; interpolated below 1/#holdout)"),
    "mia_gradnorm_auc": ("retrain", "text MIA, gradient-norm attack (mean per-tensor L2 norm of the per-item loss gradient): ROC-AUC (1 = forget items recognised, 0.5 = cannot tell)"),
    "mia_gradnorm_tpr1": ("retrain", "text MIA, gradnorm: true-positive rate at 1% false-positive rate (%)"),
    "mia_gradnorm_tpr01": ("retrain", "text MIA, gradnorm: true-positive rate at 0.1% false-positive rate (%; interpolated below 1/#holdout)"),
    "avg_gap": ("lower", "mean |metric − retrain's| over ua, ra, ta, mia_efficacy (points); in a cell, against "
                         "the same seed's retrain; in the summary table, the papers' Avg Gap: each metric "
                         "averaged over seeds first, then |mean − retrain's mean| averaged over the four"),
    "avg_gap_seedwise": ("lower", "summary table only: the cells' own avg_gap (each seed against its retrain), "
                                  "mean ± std over seeds; ≥ avg_gap of the seed means"),
    "seconds": ("lower", "wall-clock time of the unlearning run (s)"),
    "targets_per_s": ("higher", "answer tokens (text) or examples (images) per second through the shared loop's "
                                "optimizer steps (absent for methods with their own loop, e.g. entangle)"),
    "peak_gpu_mib": ("lower", "peak GPU memory allocated during the unlearning run (CUDA only)"),
    "peak_rss_mib": ("lower", "peak resident memory of the process during the unlearning run (MiB; sampled "
                              "every 5 ms, Linux)"),
    "rss_increase_mib": ("lower", "peak_rss_mib minus the resident memory when the run started (MiB): what "
                                  "the method itself needed"),
}

# The four metrics SalUn's Avg Gap averages over.
GAP_METRICS = ("ua", "ra", "ta", "mia_efficacy")
