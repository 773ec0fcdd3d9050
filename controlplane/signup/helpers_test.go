package signup

import (
	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/controlplane/provision"
)

type pgxTx = pgx.Tx

func provisiontestRequest(slug string) provision.CreateRequest {
	return provision.CreateRequest{Slug: slug, DisplayName: slug}
}
