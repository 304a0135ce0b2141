-- One subject-night's staged 30-s epochs (the hypnogram and the traces under it).
-- Parameters: :subject, :night (YYYY-MM-DD).
SELECT
  epoch_start_ms,
  stage,
  stage_label,
  stage_confidence,
  hr_bpm,
  hr_source,
  br_per_min,
  movement,
  presence,
  rmssd_ms,
  breathing_pauses
FROM sleepstack.epoch_stages
WHERE subject_id = :subject AND night = :night
ORDER BY epoch_start_ms
