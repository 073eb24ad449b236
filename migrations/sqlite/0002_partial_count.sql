-- Copies filed with an attachment replaced by a stub (the destination's size limit), counted per run.
ALTER TABLE runs ADD COLUMN partial INTEGER NOT NULL DEFAULT 0;
