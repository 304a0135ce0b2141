-- One subject-night's metrics: every column of the night summary.
-- Parameters: :subject, :night (YYYY-MM-DD, the noon-to-noon night's start date).
SELECT *
FROM sleepstack.night_summary
WHERE subject_id = :subject AND night = :night
