-- How complete each subject-night's recording is, newest first, for one subject (:subject) or all (:subject = '').
-- complete: heart rate in >= 90 % of the night in bed and no gap of 30 min; partial: the reason says which failed;
-- insufficient: the night could not be scored. Hours: strap and bed sensor data, in bed, recorded (first to last data).
-- Parameters: :subject (text; '' for every subject), :limit (number of rows).
SELECT
  subject_id,
  night,
  completeness,
  completeness_reason,
  round(coverage_pct, 1) AS coverage_pct,
  round(in_bed_hours, 2) AS in_bed_h,
  round(strap_hours, 2) AS strap_h,
  round(bed_hours, 2) AS bed_h,
  round(recorded_hours, 2) AS recorded_h,
  gaps,
  round(longest_gap_min, 1) AS longest_gap_min
FROM sleepstack.night_summary
WHERE :subject = '' OR subject_id = :subject
ORDER BY night DESC, subject_id
LIMIT :limit
