-- Heart rate and breathing rate per subject and sleep stage, over all staged nights.
-- Reads the nightly per-stage means (night_summary), not the epochs: a year of a cohort
-- is 36,500 rows here instead of 35 million. mean_hr_bpm is weighted by each night's
-- minutes in the stage (= the epoch mean wherever heart rate covered the stage);
-- median_nightly_hr_bpm is the median over nights of the nightly stage means.
WITH per_stage AS (
  SELECT subject_id, 'wake' AS stage_label, wake_min AS minutes, hr_wake_bpm AS hr, br_wake_per_min AS br
  FROM sleepstack.night_summary WHERE status = 'staged'
  UNION ALL
  SELECT subject_id, 'light', light_min, hr_light_bpm, br_light_per_min
  FROM sleepstack.night_summary WHERE status = 'staged'
  UNION ALL
  SELECT subject_id, 'deep', deep_min, hr_deep_bpm, br_deep_per_min
  FROM sleepstack.night_summary WHERE status = 'staged'
  UNION ALL
  SELECT subject_id, 'rem', rem_min, hr_rem_bpm, br_rem_per_min
  FROM sleepstack.night_summary WHERE status = 'staged'
)
SELECT
  subject_id,
  stage_label,
  CAST(round(sum(minutes) * 2) AS bigint) AS epochs,
  count(*) AS nights,
  round(sum(hr * minutes) / sum(minutes), 1) AS mean_hr_bpm,
  round(approx_percentile(hr, 0.5), 1) AS median_nightly_hr_bpm,
  round(sum(br * minutes) / sum(CASE WHEN br IS NOT NULL THEN minutes END), 1) AS mean_br_per_min
FROM per_stage
WHERE hr IS NOT NULL AND minutes > 0
GROUP BY subject_id, stage_label
ORDER BY subject_id, stage_label
