package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/tenant/account"
)

// CSV imports: an upload is checked as a whole (UTF-8, a header of known
// columns, one delimiter), kept in import_job, and dry-run: the rows are
// applied in a transaction that is rolled back, so the dry run shows
// exactly what applying would do, row by row, including rows that depend
// on earlier ones. Applying is a background job that runs the same code in
// one transaction which also marks the job done: a job cut off mid-way
// leaves nothing, is still queued, and runs again when asked for or when
// the sweeper finds it queued past its grace (sweep.go); a done job is
// never applied again, and an upload applied again as a new job
// finds every row unchanged.
//
// Conflicts: a prospect row whose address belongs to a member is refused;
// one whose address is already a prospect updates that prospect's name,
// phone and comments where the file gives them (never its unsubscribe
// state or codes); an address repeated in the file is refused after its
// first line. A catalogue row matches its product by identifier and its
// SKU by product, colour and size; a price different from the SKU's
// current one adds a price (prices are a history).

// UploadBodyLimits are the request body limits the data plane's server
// must give the back office's CSV uploads and site bundles (the page's and the API's), the
// only back-office requests with large bodies (server.Options.RouteBodyLimits).
func UploadBodyLimits() map[string]int {
	return map[string]int{"/admin/imports": MaxUploadBody, APIPrefix + "/imports": MaxUploadBody,
		"/admin/site/deploys": MaxSiteBody, APIPrefix + "/site/deploys": MaxSiteBody}
}

// Import defaults.
const (
	MaxImportBytes    = 5 << 20
	MaxUploadBody     = MaxImportBytes + 64<<10 // the multipart envelope around the file
	DefaultJobTimeout = 5 * time.Minute
	maxImportRows     = 50000
	jobMaxAttempts    = 3
)

// ImportKinds are the kinds POST /imports takes.
var ImportKinds = []string{"prospects", "catalog"}

var importColumns = map[string]struct{ required, optional []string }{
	"prospects": {[]string{"email"}, []string{"first_name", "last_name", "phone", "prospect_comment", "swa_comment"}},
	"catalog": {[]string{"product_identifier"}, []string{"product_title", "product_title_url", "headline",
		"sku_color", "sku_size", "sku_description", "inventory", "price"}},
}

// rowResult is what a row did (or would do).
type rowResult struct {
	Line   int    `json:"line"`
	Action string `json:"action"` // create, update, unchanged, refused
	Key    string `json:"key"`
	Detail string `json:"detail,omitempty"`
}

type importReport struct {
	Rows   []rowResult    `json:"rows"`
	Counts map[string]int `json:"counts"`
}

func newReport(rows []rowResult) *importReport {
	rep := &importReport{Rows: rows, Counts: map[string]int{"create": 0, "update": 0, "unchanged": 0, "refused": 0}}
	for _, r := range rows {
		rep.Counts[r.Action]++
	}
	if rep.Rows == nil {
		rep.Rows = []rowResult{}
	}
	return rep
}

// csvRecord is one data row: its line and its cells by column name.
type csvRecord struct {
	line   int
	fields map[string]string
	bad    string // a row-level problem found while reading (column count)
}

func csvRefused(detail string) *apiError {
	return &apiError{Status: fiber.StatusUnprocessableEntity, Code: "csv-invalid", Detail: detail, Field: "file"}
}

// parseCSV checks a file as a whole and returns its rows. File-level
// problems (not UTF-8, no or unknown header, a syntax error, the wrong
// delimiter) refuse it with the line; a row with the wrong number of
// cells is kept, to be refused on its own.
func parseCSV(kind string, content []byte) ([]csvRecord, error) {
	cols, ok := importColumns[kind]
	if !ok {
		return nil, invalid("kind", "kind must be one of "+strings.Join(ImportKinds, ", "))
	}
	content = bytes.TrimPrefix(content, []byte("\xef\xbb\xbf")) // a spreadsheet's byte-order mark
	if !utf8.Valid(content) {
		line := 1 + bytes.Count(content[:invalidUTF8At(content)], []byte("\n"))
		return nil, csvRefused(fmt.Sprintf("line %d is not UTF-8 text; save the file as CSV UTF-8", line))
	}
	if bytes.IndexByte(content, 0) >= 0 {
		line := 1 + bytes.Count(content[:bytes.IndexByte(content, 0)], []byte("\n"))
		return nil, csvRefused(fmt.Sprintf("line %d holds a NUL byte; this is not a text file", line))
	}
	rd := csv.NewReader(bytes.NewReader(content))
	rd.FieldsPerRecord = -1
	header, err := rd.Read()
	if errors.Is(err, io.EOF) {
		return nil, csvRefused("the file is empty; the first line must name the columns")
	}
	if err != nil {
		return nil, csvError(err)
	}
	known := map[string]bool{}
	for _, c := range append(append([]string{}, cols.required...), cols.optional...) {
		known[c] = true
	}
	index := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		if !known[h] {
			if len(header) == 1 && strings.ContainsAny(h, ";\t|") {
				return nil, csvRefused("line 1: the columns must be separated by commas, not semicolons, tabs or bars")
			}
			return nil, csvRefused(fmt.Sprintf("line 1: unknown column %q; the columns are %s", truncate(h, 40),
				strings.Join(append(append([]string{}, cols.required...), cols.optional...), ", ")))
		}
		if _, dup := index[h]; dup {
			return nil, csvRefused(fmt.Sprintf("line 1: column %q appears twice", h))
		}
		index[h] = i
	}
	for _, c := range cols.required {
		if _, ok := index[c]; !ok {
			return nil, csvRefused(fmt.Sprintf("line 1: the column %q is required", c))
		}
	}
	var out []csvRecord
	for {
		rec, err := rd.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, csvError(err)
		}
		line, _ := rd.FieldPos(0) // where the record starts
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // a blank line
		}
		if len(out) >= maxImportRows {
			return nil, csvRefused(fmt.Sprintf("the file has more than %d rows; split it", maxImportRows))
		}
		r := csvRecord{line: line, fields: map[string]string{}}
		if len(rec) != len(header) {
			r.bad = fmt.Sprintf("%d cells where the header has %d (check the commas and quotes)", len(rec), len(header))
		}
		for name, i := range index {
			if i < len(rec) {
				r.fields[name] = strings.TrimSpace(rec[i])
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return csvRefused(fmt.Sprintf("line %d: %s", pe.Line, pe.Err))
	}
	return csvRefused("the file is not CSV")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// applyRows applies a kind's rows in tx, each in a savepoint so a row the
// database refuses is refused alone, and reports every row.
func applyRows(ctx context.Context, tx pgx.Tx, key []byte, kind string, recs []csvRecord) ([]rowResult, error) {
	if kind == "prospects" {
		return applyProspects(ctx, tx, account.NewSigner(key), recs)
	}
	out := make([]rowResult, 0, len(recs))
	seen := map[string]int{}
	for _, rec := range recs {
		res := rowResult{Line: rec.line}
		res.Key = rec.fields["product_identifier"]
		if c, s := rec.fields["sku_color"], rec.fields["sku_size"]; c != "" || s != "" {
			res.Key += " / " + c + " / " + s
		}
		if rec.bad != "" {
			res.Action, res.Detail = "refused", rec.bad
			out = append(out, res)
			continue
		}
		if first, dup := seen[res.Key]; dup && res.Key != "" {
			res.Action, res.Detail = "refused", fmt.Sprintf("the same product and SKU are on line %d", first)
			out = append(out, res)
			continue
		}
		seen[res.Key] = rec.line
		sp, err := tx.Begin(ctx)
		if err != nil {
			return nil, err
		}
		var refusal *apiError
		action, err := applyCatalog(ctx, sp, rec.fields)
		if ae, ok := asAPIError(err); ok {
			refusal, err = ae, nil
		}
		if err != nil {
			_ = sp.Rollback(ctx)
			if ctx.Err() != nil {
				return nil, err
			}
			// What the database refused (a value too long, a constraint):
			// the row alone.
			res.Action, res.Detail = "refused", "the database refused the row: "+truncate(err.Error(), 200)
			out = append(out, res)
			continue
		}
		if refusal != nil {
			if err := sp.Rollback(ctx); err != nil {
				return nil, err
			}
			res.Action, res.Detail = "refused", refusal.Detail
			out = append(out, res)
			continue
		}
		if err := sp.Commit(ctx); err != nil {
			return nil, err
		}
		res.Action = action
		out = append(out, res)
	}
	return out, nil
}

func rowInvalid(detail string) *apiError { return invalid("", detail) }

// lengths checks the fields' lengths against their columns'.
func lengths(f map[string]string, max map[string]int) error {
	for k, n := range max {
		if utf8.RuneCountInString(f[k]) > n {
			return rowInvalid(fmt.Sprintf("%s is longer than %d characters", k, n))
		}
	}
	return nil
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// prospectRow is an existing prospect's editable fields.
type prospectRow struct {
	id     int64
	fields [5]*string
}

var prospectFields = [5]string{"first_name", "last_name", "phone", "prospect_comment", "swa_comment"}

// applyProspects checks every row against the members and prospects of
// the file's addresses (read once, locked), then sends the writes as one
// batch: a large file costs a few round trips, not a few per row.
func applyProspects(ctx context.Context, tx pgx.Tx, signer *account.Signer, recs []csvRecord) ([]rowResult, error) {
	var emails []string
	for _, rec := range recs {
		emails = append(emails, strings.ToLower(rec.fields["email"]))
	}
	members := map[string]bool{}
	rows, err := tx.Query(ctx, `SELECT DISTINCT lower(a.email) FROM account a JOIN member m ON m.account_id = a.id WHERE lower(a.email) = ANY($1)`, emails)
	if err != nil {
		return nil, err
	}
	ms, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	for _, e := range ms {
		members[e] = true
	}
	existing := map[string]*prospectRow{}
	rows, err = tx.Query(ctx, `SELECT id, lower(email), first_name, last_name, phone, prospect_comment, swa_comment FROM prospect
WHERE lower(email) = ANY($1) ORDER BY id FOR UPDATE`, emails)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var p prospectRow
		var e string
		if err := rows.Scan(&p.id, &e, &p.fields[0], &p.fields[1], &p.fields[2], &p.fields[3], &p.fields[4]); err != nil {
			rows.Close()
			return nil, err
		}
		if existing[e] == nil {
			existing[e] = &p
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]rowResult, 0, len(recs))
	seen := map[string]int{}
	batch := &pgx.Batch{}
	for _, rec := range recs {
		f := rec.fields
		email := strings.ToLower(f["email"])
		res := rowResult{Line: rec.line, Key: email}
		refuse := func(detail string) { res.Action, res.Detail = "refused", detail }
		switch first, dup := seen[email]; {
		case rec.bad != "":
			refuse(rec.bad)
		case email == "":
			refuse("email is empty")
		case !account.ValidateEmail(email).OK():
			refuse("email is not a valid address")
		case dup:
			refuse(fmt.Sprintf("the same address is on line %d", first))
		case members[email]:
			refuse("the address is already a member's; members are not imported as prospects")
		}
		if res.Action == "" {
			if err := lengths(f, map[string]int{"first_name": 30, "last_name": 150, "phone": 100, "prospect_comment": 5000, "swa_comment": 5000}); err != nil {
				refuse(err.(*apiError).Detail)
			}
		}
		if res.Action != "" {
			out = append(out, res)
			continue
		}
		seen[email] = rec.line
		var vals [5]*string
		for i, name := range prospectFields {
			vals[i] = nullIfEmpty(f[name])
		}
		p := existing[email]
		switch {
		case p == nil:
			str := account.RandomString(20)
			batch.Queue(`INSERT INTO prospect (email, first_name, last_name, phone, prospect_comment, swa_comment,
email_unsubscribe_string, email_unsubscribe_string_signed, pr_cd) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
				email, vals[0], vals[1], vals[2], vals[3], vals[4], str, signer.UnsubscribeToken(str), account.RandomString(20))
			res.Action = "create"
		default:
			changed := false
			for i, v := range vals {
				if v != nil && (p.fields[i] == nil || *p.fields[i] != *v) {
					changed = true
				}
			}
			if !changed {
				res.Action = "unchanged"
				break
			}
			batch.Queue(`UPDATE prospect SET first_name = coalesce($2, first_name), last_name = coalesce($3, last_name),
phone = coalesce($4, phone), prospect_comment = coalesce($5, prospect_comment), swa_comment = coalesce($6, swa_comment) WHERE id = $1`,
				p.id, vals[0], vals[1], vals[2], vals[3], vals[4])
			res.Action = "update"
		}
		out = append(out, res)
	}
	if batch.Len() > 0 {
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return nil, fmt.Errorf("prospect writes: %w", err)
		}
	}
	return out, nil
}

func applyCatalog(ctx context.Context, tx pgx.Tx, f map[string]string) (string, error) {
	ident := f["product_identifier"]
	if ident == "" {
		return "", rowInvalid("product_identifier is empty")
	}
	if err := lengths(f, map[string]int{"product_identifier": 100, "product_title": 200, "product_title_url": 100,
		"headline": 5000, "sku_color": 500, "sku_size": 500, "sku_description": 1000}); err != nil {
		return "", err
	}
	var price *decimal.Decimal
	if s := f["price"]; s != "" {
		d, err := decimal.NewFromString(s)
		if err != nil || d.IsNegative() || d.Exponent() < -2 || d.GreaterThanOrEqual(decimal.New(1, 8)) {
			return "", rowInvalid("price must be an amount such as 12.50 (at least 0, two decimals at most)")
		}
		price = &d
	}
	created, changed := false, false
	var productID int64
	err := tx.QueryRow(ctx, `SELECT id FROM product WHERE identifier = $1 FOR UPDATE`, ident).Scan(&productID)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if f["product_title"] == "" || f["product_title_url"] == "" {
			return "", rowInvalid("a new product needs product_title and product_title_url")
		}
		if err := tx.QueryRow(ctx, `INSERT INTO product (identifier, title, title_url, headline) VALUES ($1, $2, $3, $4) RETURNING id`,
			ident, f["product_title"], f["product_title_url"], nullIfEmpty(f["headline"])).Scan(&productID); err != nil {
			return "", err
		}
		created = true
	case err != nil:
		return "", err
	default:
		tag, err := tx.Exec(ctx, `UPDATE product SET title = coalesce($2, title), title_url = coalesce($3, title_url), headline = coalesce($4, headline)
WHERE id = $1 AND (title, title_url, headline) IS DISTINCT FROM (coalesce($2, title), coalesce($3, title_url), coalesce($4, headline))`,
			productID, nullIfEmpty(f["product_title"]), nullIfEmpty(f["product_title_url"]), nullIfEmpty(f["headline"]))
		if err != nil {
			return "", err
		}
		changed = tag.RowsAffected() > 0
	}
	skuRow := f["sku_color"] != "" || f["sku_size"] != "" || f["sku_description"] != "" || f["inventory"] != "" || price != nil
	if skuRow {
		var inventoryID *int64
		if inv := f["inventory"]; inv != "" {
			var id int64
			if err := tx.QueryRow(ctx, `SELECT id FROM sku_inventory WHERE identifier = $1`, inv).Scan(&id); errors.Is(err, pgx.ErrNoRows) {
				return "", rowInvalid(fmt.Sprintf("inventory %q is unknown (in-stock, back-ordered, out-of-stock ...)", truncate(inv, 40)))
			} else if err != nil {
				return "", err
			}
			inventoryID = &id
		}
		var skuID int64
		err := tx.QueryRow(ctx, `SELECT s.id FROM sku s JOIN product_sku ps ON ps.sku_id = s.id
WHERE ps.product_id = $1 AND coalesce(s.color, '') = $2 AND coalesce(s.size, '') = $3 ORDER BY s.id LIMIT 1 FOR UPDATE OF s`,
			productID, f["sku_color"], f["sku_size"]).Scan(&skuID)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if err := tx.QueryRow(ctx, `INSERT INTO sku (sku_type_id, sku_inventory_id, color, size, description)
VALUES ((SELECT min(id) FROM sku_type), coalesce($1, (SELECT id FROM sku_inventory WHERE identifier = 'in-stock'), (SELECT min(id) FROM sku_inventory)), $2, $3, $4)
RETURNING id`, inventoryID, nullIfEmpty(f["sku_color"]), nullIfEmpty(f["sku_size"]), nullIfEmpty(f["sku_description"])).Scan(&skuID); err != nil {
				return "", err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO product_sku (product_id, sku_id) VALUES ($1, $2)`, productID, skuID); err != nil {
				return "", err
			}
			created = true
		case err != nil:
			return "", err
		default:
			tag, err := tx.Exec(ctx, `UPDATE sku SET sku_inventory_id = coalesce($2, sku_inventory_id), description = coalesce($3, description)
WHERE id = $1 AND (sku_inventory_id, description) IS DISTINCT FROM (coalesce($2, sku_inventory_id), coalesce($3, description))`,
				skuID, inventoryID, nullIfEmpty(f["sku_description"]))
			if err != nil {
				return "", err
			}
			changed = changed || tag.RowsAffected() > 0
		}
		if price != nil {
			tag, err := tx.Exec(ctx, `INSERT INTO sku_price (sku_id, price) SELECT $1, $2
WHERE (SELECT price FROM sku_price WHERE sku_id = $1 ORDER BY created_date_time DESC, id DESC LIMIT 1) IS DISTINCT FROM $2::numeric`, skuID, *price)
			if err != nil {
				return "", err
			}
			changed = changed || tag.RowsAffected() > 0
		}
	}
	switch {
	case created:
		return "create", nil
	case changed:
		return "update", nil
	}
	return "unchanged", nil
}

// dryRun applies the rows in a transaction it rolls back.
func dryRun(ctx context.Context, c *pgxpool.Conn, key []byte, kind string, recs []csvRecord) (*importReport, error) {
	tx, err := c.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // the point: nothing stays
	rows, err := applyRows(ctx, tx, key, kind, recs)
	if err != nil {
		return nil, err
	}
	return newReport(rows), nil
}

type jobJSON struct {
	ID         int64           `json:"id"`
	Kind       string          `json:"kind"`
	Status     string          `json:"status"`
	Filename   string          `json:"filename"`
	SHA256     string          `json:"sha256"`
	StaffID    *int64          `json:"staff_id"`
	DryRun     json.RawMessage `json:"dry_run"`
	Result     json.RawMessage `json:"result"`
	Error      *string         `json:"error"`
	Attempts   int             `json:"attempts"`
	CreatedAt  time.Time       `json:"created_at"`
	FinishedAt *time.Time      `json:"finished_at"`
}

const jobColumns = `id, kind, status, filename, sha256, staff_id, coalesce(dry_run, 'null'::jsonb), coalesce(result, 'null'::jsonb),
error, attempts, created_at, finished_at`

func scanJob(row pgx.Row) (jobJSON, error) {
	var j jobJSON
	var dry, res []byte
	err := row.Scan(&j.ID, &j.Kind, &j.Status, &j.Filename, &j.SHA256, &j.StaffID, &dry, &res, &j.Error, &j.Attempts, &j.CreatedAt, &j.FinishedAt)
	j.DryRun, j.Result = dry, res
	return j, err
}

func (a *App) getJob(r *req, id int64) (*jobJSON, error) {
	var j jobJSON
	err := a.conn(r, func(c *pgxpool.Conn) error {
		var err error
		j, err = scanJob(c.QueryRow(r.ctx, `SELECT `+jobColumns+` FROM import_job WHERE id = $1`, id))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("import job: %w", err)
	}
	if j.Status == "queued" {
		a.startJob(r.tenant, r.key, j.ID) // resumes a job whose worker went away
	}
	return &j, nil
}

func (a *App) listJobs(r *req, p page) ([]jobJSON, string, error) {
	var out []jobJSON
	err := a.conn(r, func(c *pgxpool.Conn) error {
		rows, err := c.Query(r.ctx, `SELECT `+jobColumns+` FROM import_job WHERE ($1 = 0 OR id < $1) ORDER BY id DESC LIMIT $2`, p.after, p.limit+1)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (jobJSON, error) { return scanJob(row) })
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("import jobs: %w", err)
	}
	for i := range out {
		out[i].DryRun = nil // the list is a summary
		if out[i].Status == "queued" {
			a.startJob(r.tenant, r.key, out[i].ID) // resumes a job whose worker went away
		}
	}
	return pageTail(out, p, func(j jobJSON) int64 { return j.ID })
}

// upload checks a file, keeps it as a job and dry-runs it under the
// request's deadline.
func (a *App) upload(r *req, kind, filename string, content []byte) (*jobJSON, error) {
	if len(content) > a.maxImport {
		return nil, a.errTooLarge()
	}
	recs, err := parseCSV(kind, content)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(content)
	var id int64
	err = a.conn(r, func(c *pgxpool.Conn) error {
		rep, err := dryRun(r.ctx, c, r.key, kind, recs)
		if err != nil {
			return err
		}
		dry, err := json.Marshal(rep)
		if err != nil {
			return err
		}
		return pgx.BeginFunc(r.ctx, c, func(tx pgx.Tx) error {
			if err := tx.QueryRow(r.ctx, `INSERT INTO import_job (kind, filename, content, sha256, staff_id, dry_run)
VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`, kind, truncate(filename, 200), content, hex.EncodeToString(sum[:]), r.who.staff.ID, dry).Scan(&id); err != nil {
				return err
			}
			return r.audit(tx, auditEntry{Action: "import.uploaded", TargetType: "import_job", TargetID: id,
				After: map[string]any{"kind": kind, "filename": filename, "bytes": len(content), "rows": len(recs), "counts": rep.Counts}})
		})
	})
	if err != nil {
		return nil, fmt.Errorf("import upload: %w", err)
	}
	return a.getJob(r, id)
}

func (a *App) errTooLarge() *apiError {
	return &apiError{Status: fiber.StatusRequestEntityTooLarge, Code: "payload-too-large",
		Detail: fmt.Sprintf("the file is larger than the limit of %d MiB", a.maxImport>>20), Field: "file"}
}

// redoDryRun checks a kept upload again against the data as it is now.
func (a *App) redoDryRun(r *req, id int64) (*jobJSON, error) {
	err := a.conn(r, func(c *pgxpool.Conn) error {
		var kind string
		var content []byte
		err := c.QueryRow(r.ctx, `SELECT kind, content FROM import_job WHERE id = $1`, id).Scan(&kind, &content)
		if errors.Is(err, pgx.ErrNoRows) {
			return errNotFound
		}
		if err != nil {
			return err
		}
		recs, err := parseCSV(kind, content)
		if err != nil {
			return err
		}
		rep, err := dryRun(r.ctx, c, r.key, kind, recs)
		if err != nil {
			return err
		}
		_, err = c.Exec(r.ctx, `UPDATE import_job SET dry_run = $2 WHERE id = $1`, id, rep)
		return err
	})
	if err != nil {
		if _, ok := asAPIError(err); ok {
			return nil, err
		}
		return nil, fmt.Errorf("import dry run: %w", err)
	}
	return a.getJob(r, id)
}

// apply queues a job (once: a queued or done job is left as it is) and
// starts it.
func (a *App) apply(r *req, id int64) (*jobJSON, error) {
	err := a.tx(r, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(r.ctx, `SELECT status FROM import_job WHERE id = $1 FOR UPDATE`, id).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			return errNotFound
		}
		if err != nil || status != "uploaded" {
			return err
		}
		if _, err := tx.Exec(r.ctx, `UPDATE import_job SET status = 'queued', queued_at = now() WHERE id = $1`, id); err != nil {
			return err
		}
		return r.audit(tx, auditEntry{Action: "import.queued", TargetType: "import_job", TargetID: id})
	})
	if err != nil {
		if _, ok := asAPIError(err); ok {
			return nil, err
		}
		return nil, fmt.Errorf("import apply: %w", err)
	}
	return a.getJob(r, id)
}

// startJob runs a queued job in the background unless this process runs
// it already. The worker holds a connection only while it works.
func (a *App) startJob(t *directory.Tenant, key []byte, id int64) {
	release, ok := a.claimJob(t, id)
	if !ok {
		return
	}
	key = bytes.Clone(key)
	go func() {
		defer release()
		if _, err := a.runClaimed(context.Background(), t, key, id); err != nil {
			a.log.Error("import job", "tenant", t.Slug, "job", id, "err", err)
		}
	}()
}

// claimJob marks a job as run by this process; false when it is already.
// Across processes runJob's row lock keeps one worker per job.
func (a *App) claimJob(t *directory.Tenant, id int64) (release func(), ok bool) {
	k := fmt.Sprintf("%d:%d", t.ID, id)
	if _, running := a.jobs.LoadOrStore(k, true); running {
		return nil, false
	}
	return func() { a.jobs.Delete(k) }, true
}

// errJobDeadline: a job ran past the import jobs' deadline.
var errJobDeadline = errors.New("import job deadline")

// runClaimed runs a claimed job under the import jobs' deadline.
func (a *App) runClaimed(ctx context.Context, t *directory.Tenant, key []byte, id int64) (bool, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, a.jobTimeout, errJobDeadline)
	defer cancel()
	return a.runJob(ctx, t, key, id)
}

// runJob applies a queued job in one transaction that also marks it done.
// The job's row lock (SKIP LOCKED) keeps another replica off it meanwhile.
// A failure rolls everything back and counts an attempt; after
// jobMaxAttempts the job is failed. A job past its own deadline counts an
// attempt too (a file too large to apply in time ends failed instead of
// being run again for ever); one cut off by its caller (a shutdown) does
// not. It reports whether it applied the job.
func (a *App) runJob(ctx context.Context, t *directory.Tenant, key []byte, id int64) (bool, error) {
	var runErr error
	applied := false
	err := a.db.Do(ctx, t, func(c *pgxpool.Conn) error {
		runErr = pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			var kind, filename string
			var content []byte
			var staffID *int64
			err := tx.QueryRow(ctx, `SELECT kind, filename, content, staff_id FROM import_job WHERE id = $1 AND status = 'queued'
FOR UPDATE SKIP LOCKED`, id).Scan(&kind, &filename, &content, &staffID)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil // done, or another worker has it
			}
			if err != nil {
				return err
			}
			recs, err := parseCSV(kind, content)
			if err != nil {
				return err
			}
			rows, err := applyRows(ctx, tx, key, kind, recs)
			if err != nil {
				return err
			}
			rep := newReport(rows)
			if _, err := tx.Exec(ctx, `UPDATE import_job SET status = 'done', result = $2, error = NULL, attempts = attempts + 1,
finished_at = now() WHERE id = $1`, id, rep); err != nil {
				return err
			}
			applied = true
			e := auditEntry{Actor: "import job", Action: "import.applied", TargetType: "import_job", TargetID: id,
				After: map[string]any{"kind": kind, "filename": filename, "counts": rep.Counts}}
			if staffID != nil {
				e.StaffID = *staffID
				_ = tx.QueryRow(ctx, `SELECT email FROM staff WHERE id = $1`, *staffID).Scan(&e.Actor)
			}
			return writeAudit(ctx, tx, e)
		})
		return nil
	})
	if runErr == nil {
		return applied, err
	}
	why := runErr.Error()
	switch {
	case errors.Is(context.Cause(ctx), errJobDeadline):
		why = fmt.Sprintf("the job ran past its deadline of %s; split the file", a.jobTimeout)
	case ctx.Err() != nil:
		return false, runErr
	}
	// The job's own context may be over: the attempt is counted under a
	// short one of its own.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err = a.db.Do(actx, t, func(c *pgxpool.Conn) error {
		_, err := c.Exec(actx, `UPDATE import_job SET attempts = attempts + 1, error = $2,
status = CASE WHEN attempts + 1 >= $3 THEN 'failed' ELSE status END WHERE id = $1 AND status = 'queued'`,
			id, truncate(why, 900), jobMaxAttempts)
		return err
	})
	return false, errors.Join(runErr, err)
}

// uploadFrom reads the upload: a multipart form's "file" (and "kind"), or
// a text/csv body with ?kind=.
func (a *App) uploadFrom(c *fiber.Ctx) (kind, filename string, content []byte, err error) {
	if len(c.Body()) > a.maxImport+64<<10 {
		return "", "", nil, a.errTooLarge()
	}
	kind = c.Query("kind")
	if strings.HasPrefix(c.Get(fiber.HeaderContentType), fiber.MIMEMultipartForm) {
		if v := c.FormValue("kind"); v != "" {
			kind = v
		}
		fh, ferr := c.FormFile("file")
		if ferr != nil {
			return "", "", nil, required("file")
		}
		if fh.Size > int64(a.maxImport) {
			return "", "", nil, a.errTooLarge()
		}
		f, ferr := fh.Open()
		if ferr != nil {
			return "", "", nil, required("file")
		}
		defer f.Close()
		content, err = io.ReadAll(io.LimitReader(f, int64(a.maxImport)+1))
		if err != nil {
			return "", "", nil, err
		}
		filename = fh.Filename
	} else {
		content = c.Body()
		filename = c.Query("filename")
	}
	if len(content) > a.maxImport {
		return "", "", nil, a.errTooLarge()
	}
	if kind == "" {
		return "", "", nil, required("kind")
	}
	if len(content) == 0 {
		return "", "", nil, required("file")
	}
	return kind, filename, bytes.Clone(content), nil
}

func (a *App) apiImportUpload(c *fiber.Ctx) error {
	kind, filename, content, err := a.uploadFrom(c)
	if err != nil {
		return err
	}
	j, err := a.upload(a.r(c), kind, filename, content)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(j)
}

func (a *App) apiImportList(c *fiber.Ctx) error { return listHandler(a.listJobs, a)(c) }

func (a *App) apiImportGet(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	j, err := a.getJob(a.r(c), id)
	if err != nil {
		return err
	}
	return c.JSON(j)
}

func (a *App) apiImportDryRun(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	j, err := a.redoDryRun(a.r(c), id)
	if err != nil {
		return err
	}
	return c.JSON(j)
}

func (a *App) apiImportApply(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	j, err := a.apply(a.r(c), id)
	if err != nil {
		return err
	}
	status := fiber.StatusAccepted
	if j.Status == "done" || j.Status == "failed" {
		status = fiber.StatusOK
	}
	return c.Status(status).JSON(j)
}
