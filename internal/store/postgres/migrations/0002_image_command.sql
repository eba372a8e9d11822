-- The default command of a rootfs image, given at upload: a JSON array of
-- strings, NULL when the image has none (a VM using it names its own).
ALTER TABLE images ADD COLUMN command jsonb CHECK (command IS NULL OR jsonb_typeof(command) = 'array');
