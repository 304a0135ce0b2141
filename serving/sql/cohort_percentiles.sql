-- Cohort percentiles over all staged nights: where a night sits in the population.
SELECT
  count(*) AS nights,
  count(DISTINCT subject_id) AS subjects,
  round(approx_percentile(total_sleep_time_min, 0.10), 1) AS tst_min_p10,
  round(approx_percentile(total_sleep_time_min, 0.50), 1) AS tst_min_p50,
  round(approx_percentile(total_sleep_time_min, 0.90), 1) AS tst_min_p90,
  round(approx_percentile(sleep_efficiency_pct, 0.10), 1) AS efficiency_pct_p10,
  round(approx_percentile(sleep_efficiency_pct, 0.50), 1) AS efficiency_pct_p50,
  round(approx_percentile(sleep_efficiency_pct, 0.90), 1) AS efficiency_pct_p90,
  round(approx_percentile(waso_min, 0.50), 1) AS waso_min_p50,
  round(approx_percentile(sleep_score, 0.10), 1) AS sleep_score_p10,
  round(approx_percentile(sleep_score, 0.50), 1) AS sleep_score_p50,
  round(approx_percentile(sleep_score, 0.90), 1) AS sleep_score_p90,
  round(approx_percentile(mean_hr_bpm, 0.50), 1) AS mean_hr_bpm_p50
FROM sleepstack.night_summary
WHERE status = 'staged'
