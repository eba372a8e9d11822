package alert

import (
	"errors"

	"github.com/novacron/novacron"
)

func asErr(err error, e **novacron.Error) bool { return errors.As(err, e) }
