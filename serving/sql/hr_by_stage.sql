-- Mean heart rate and breathing rate per subject and sleep stage.
SELECT
  subject_id,
  stage_label,
  count(*) AS epochs,
  round(avg(hr_bpm), 1) AS mean_hr_bpm,
  round(approx_percentile(hr_bpm, 0.5), 1) AS median_hr_bpm,
  round(avg(br_per_min), 1) AS mean_br_per_min
FROM sleepstack.epoch_stages
WHERE hr_bpm IS NOT NULL
GROUP BY subject_id, stage_label
ORDER BY subject_id, stage_label
