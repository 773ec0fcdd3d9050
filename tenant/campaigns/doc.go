// Package campaigns holds a tenant's e-mail campaigns: the email rows of
// type Member or Prospect, their placeholders, and the worker that sends
// them.
//
// Sending starts by snapshotting the campaign's segment (members subscribed
// to the newsletter and not unsubscribed, or prospects not unsubscribed)
// into campaign_recipient, one row per recipient, unique per campaign. The
// Worker claims pending rows with FOR UPDATE SKIP LOCKED and, in the same
// transaction, queues each recipient's mail in the outbox (platform/mail),
// writes its email_sent row and marks the row sent. A crash, a cancelled
// batch or a stop rolls back or keeps all three together, so a recipient is
// mailed exactly once however often sending is paused and resumed, and two
// replicas never claim the same recipient. The campaign becomes Sent when no
// recipient is pending.
//
// Every mail carries the recipient's unsubscribe link (the account flow's
// /account/email-unsubscribe page with the token) and RFC 8058 one-click
// List-Unsubscribe headers pointing at /user/email-unsubscribe-one-click.
package campaigns
