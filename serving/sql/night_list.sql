-- Staged subject-nights, newest first, for one subject (:subject) or all (:subject = '').
-- Parameters: :subject (text; '' for every subject), :limit (number of rows).
SELECT
  subject_id,
  night,
  status,
  status_reason,
  round(total_sleep_time_min, 1) AS tst_min,
  round(sleep_efficiency_pct, 1) AS efficiency_pct,
  round(waso_min, 1) AS waso_min,
  sleep_score,
  round(pauses_per_hour, 1) AS pauses_per_hour,
  round(coverage_pct, 1) AS coverage_pct,
  method
FROM sleepstack.night_summary
WHERE :subject = '' OR subject_id = :subject
ORDER BY night DESC, subject_id
LIMIT :limit
