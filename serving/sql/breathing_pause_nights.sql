-- Nights with breathing pauses: staged bed-sensor nights with at least 5 pauses per hour of
-- sleep (the AASM's lower bound of a mild apnoea-hypopnoea index, as a screening flag,
-- not a diagnosis), worst first.
SELECT
  subject_id,
  night,
  breathing_pauses,
  round(pauses_per_hour, 1) AS pauses_per_hour,
  round(total_sleep_time_min, 1) AS tst_min,
  CASE
    WHEN pauses_per_hour >= 30 THEN 'severe range'
    WHEN pauses_per_hour >= 15 THEN 'moderate range'
    ELSE 'mild range'
  END AS band
FROM sleepstack.night_summary
WHERE status = 'staged' AND pauses_per_hour >= 5
ORDER BY pauses_per_hour DESC, subject_id, night
