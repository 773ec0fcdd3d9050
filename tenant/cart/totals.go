package cart

import (
	"encoding/json"

	"github.com/shopspring/decimal"
)

// Amount is a money value as the contract writes it: a two-decimal string
// ("7.00"), or the JSON number 0 when nothing was ever added to it (§1.3,
// §5.1 "Cart totals object").
type Amount struct {
	Value decimal.Decimal
	// Set is false for the integer-0 starting value.
	Set bool
}

// Money returns a set Amount.
func Money(d decimal.Decimal) Amount { return Amount{Value: d, Set: true} }

// MarshalJSON writes "x.yy" or 0.
func (a Amount) MarshalJSON() ([]byte, error) {
	if !a.Set {
		return []byte("0"), nil
	}
	return []byte(`"` + a.Value.StringFixed(2) + `"`), nil
}

// Totals is a cart's totals. Without discount codes it is written with the
// three HEAD keys (§5.1); a cart with discount codes also carries the
// seed-era item_discount and shipping_discount (§11).
type Totals struct {
	ItemSubtotal     Amount
	ItemDiscount     Amount
	ShippingSubtotal Amount
	ShippingDiscount Amount
	CartTotal        Amount
	// WithDiscounts selects the five-key form.
	WithDiscounts bool
}

type totalsJSON struct {
	ItemSubtotal     Amount `json:"item_subtotal"`
	ShippingSubtotal Amount `json:"shipping_subtotal"`
	CartTotal        Amount `json:"cart_total"`
}

type totalsDiscountJSON struct {
	ItemSubtotal     Amount `json:"item_subtotal"`
	ItemDiscount     Amount `json:"item_discount"`
	ShippingSubtotal Amount `json:"shipping_subtotal"`
	ShippingDiscount Amount `json:"shipping_discount"`
	CartTotal        Amount `json:"cart_total"`
}

// JSON returns the value to encode for the contract's totals object.
func (t Totals) JSON() any {
	if t.WithDiscounts {
		return totalsDiscountJSON{t.ItemSubtotal, t.ItemDiscount, t.ShippingSubtotal, t.ShippingDiscount, t.CartTotal}
	}
	return totalsJSON{t.ItemSubtotal, t.ShippingSubtotal, t.CartTotal}
}

// MarshalJSON writes the contract's totals object.
func (t Totals) MarshalJSON() ([]byte, error) { return json.Marshal(t.JSON()) }

// Total is the amount to charge: CartTotal's value (0 when unset).
func (t Totals) Total() decimal.Decimal { return t.CartTotal.Value }

var hundred = decimal.NewFromInt(100)

// ComputeTotals computes a cart's totals on the server, exactly:
//
//   - item_subtotal: Σ current price × quantity over all lines; 0 (number)
//     without lines.
//   - shipping_subtotal: the selected method's cost; 0 (number) without one.
//   - discounts (seed era, §11), in the order the codes were applied: a
//     combinable code counts when the item subtotal reaches its minimum; of
//     the non-combinable codes only the first counts, and only when its
//     minimum is met. The item discount comes from the counting
//     non-combinable item_total code: percent-off takes amount% of the item
//     subtotal, rounded half up to the cent (upstream left it unrounded),
//     dollar-amt-off takes the amount (once; upstream doubled a previous
//     value), both capped at the item subtotal. A counting shipping code
//     makes the shipping free when the selected method is USPSRetailGround.
//     Subscription codes change no amount.
//   - cart_total: item − item discount + shipping − shipping discount; 0
//     (number) when both the item and shipping subtotals are.
//
// It sets Applied on each discount.
func ComputeTotals(lines []Line, shipping *ShippingMethod, discounts []Discount) Totals {
	var t Totals
	items := decimal.Zero
	if len(lines) > 0 {
		for _, l := range lines {
			items = items.Add(l.Subtotal())
		}
		t.ItemSubtotal = Money(items)
	}
	ship := decimal.Zero
	if shipping != nil {
		ship = shipping.Cost
		t.ShippingSubtotal = Money(ship)
	}
	t.WithDiscounts = len(discounts) > 0
	itemDiscount, shipDiscount := decimal.Zero, decimal.Zero
	seenNonCombinable := false
	for i := range discounts {
		d := &discounts[i]
		met := items.GreaterThanOrEqual(d.OrderMinimum)
		if d.Combinable {
			d.Applied = met
		} else {
			d.Applied = !seenNonCombinable && met
			seenNonCombinable = true
		}
		if !d.Applied {
			continue
		}
		switch d.AppliesTo {
		case "item_total":
			if d.Combinable || t.ItemDiscount.Set {
				continue
			}
			switch d.Action {
			case "percent-off":
				itemDiscount = items.Mul(d.Amount).Div(hundred).Round(2)
			case "dollar-amt-off":
				itemDiscount = d.Amount
			}
			if itemDiscount.GreaterThan(items) {
				itemDiscount = items
			}
			t.ItemDiscount = Money(itemDiscount)
		case "shipping":
			if shipping != nil && shipping.Identifier == FreeShippingMethod && !t.ShippingDiscount.Set {
				shipDiscount = ship
				t.ShippingDiscount = Money(shipDiscount)
			}
		}
	}
	if t.ItemSubtotal.Set || t.ShippingSubtotal.Set {
		total := items.Sub(itemDiscount).Add(ship).Sub(shipDiscount)
		if total.IsNegative() {
			total = decimal.Zero
		}
		t.CartTotal = Money(total)
	}
	return t
}
