-- Stage-distribution trend: each staged night's share of sleep per stage, and its change
-- against the subject's previous staged night (percentage points).
WITH shares AS (
  SELECT
    subject_id,
    night,
    light_pct,
    deep_pct,
    rem_pct,
    total_sleep_time_min
  FROM sleepstack.night_summary
  WHERE status = 'staged' AND total_sleep_time_min > 0
)
SELECT
  subject_id,
  night,
  round(light_pct, 1) AS light_pct,
  round(deep_pct, 1) AS deep_pct,
  round(rem_pct, 1) AS rem_pct,
  round(deep_pct - lag(deep_pct) OVER (PARTITION BY subject_id ORDER BY night), 1) AS deep_pct_change,
  round(rem_pct - lag(rem_pct) OVER (PARTITION BY subject_id ORDER BY night), 1) AS rem_pct_change,
  round(avg(deep_pct) OVER (PARTITION BY subject_id ORDER BY night ROWS BETWEEN 6 PRECEDING AND CURRENT ROW), 1)
    AS deep_pct_7_night_avg
FROM shares
ORDER BY subject_id, night
