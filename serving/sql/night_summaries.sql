-- Night summaries by subject: one row per staged subject-night.
SELECT
  subject_id,
  night,
  status,
  round(total_sleep_time_min, 1) AS tst_min,
  round(sleep_efficiency_pct, 1) AS efficiency_pct,
  round(waso_min, 1) AS waso_min,
  round(light_min, 1) AS light_min,
  round(deep_min, 1) AS deep_min,
  round(rem_min, 1) AS rem_min,
  sleep_score,
  round(pauses_per_hour, 1) AS pauses_per_hour,
  status_reason,
  round(coverage_pct, 1) AS coverage_pct,
  round(mean_hr_bpm, 1) AS mean_hr_bpm,
  round(mean_br_per_min, 1) AS mean_br_per_min
FROM sleepstack.night_summary
ORDER BY subject_id, night
