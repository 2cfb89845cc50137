-- Development sales orders with their lines, for the seeded customers and products.
-- Re-runnable: orders keyed on name, lines on (order, product).
INSERT INTO sale_order (name, state, client_order_ref, company_id, partner_id, partner_invoice_id, partner_shipping_id, currency_id, date_order, validity_date, require_signature, require_payment, invoice_status, amount_untaxed, amount_tax, amount_total, currency_rate, create_date, write_date)
SELECT v.name, v.state, v.client_ref, co.id, p.id, p.id, p.id, co.currency_id,
       now() - make_interval(days => v.days_ago), (now() - make_interval(days => v.days_ago) + interval '30 days')::date,
       true, false, CASE WHEN v.state = 'sale' THEN 'to invoice' ELSE 'no' END, 0, 0, 0, 1.0, now(), now()
FROM (VALUES
  ('SEED-S0001', 'SEED-C001', 'sale',   'PO-4471', 42),
  ('SEED-S0002', 'SEED-C002', 'sale',   NULL,      35),
  ('SEED-S0003', 'SEED-C003', 'draft',  'Q3 fit-out', 20),
  ('SEED-S0004', 'SEED-C005', 'sent',   NULL,      12),
  ('SEED-S0005', 'SEED-C008', 'sale',   'NOS-2291', 8),
  ('SEED-S0006', 'SEED-C009', 'cancel', NULL,       5),
  ('SEED-S0007', 'SEED-C010', 'draft',  'Classroom refresh', 2),
  ('SEED-S0008', 'SEED-C001', 'draft',  NULL,       0)
) AS v(name, customer_ref, state, client_ref, days_ago)
JOIN res_partner p ON p.ref = v.customer_ref
CROSS JOIN LATERAL (SELECT id, currency_id FROM res_company ORDER BY id LIMIT 1) co
WHERE NOT EXISTS (SELECT 1 FROM sale_order o WHERE o.name = v.name);

INSERT INTO sale_order_line (order_id, sequence, company_id, currency_id, order_partner_id, state, name, product_id, product_uom, product_uom_qty, price_unit, discount, price_subtotal, price_tax, price_total, customer_lead, invoice_status, create_date, write_date)
SELECT o.id, v.seq, o.company_id, o.currency_id, o.partner_id, o.state,
       '[' || pp.default_code || '] ' || (pt.name->>'en_US'),
       pp.id, pt.uom_id, v.qty, pt.list_price, v.discount,
       round(v.qty * pt.list_price * (1 - v.discount / 100), 2), 0,
       round(v.qty * pt.list_price * (1 - v.discount / 100), 2),
       0, o.invoice_status, now(), now()
FROM (VALUES
  ('SEED-S0001', 10, 'SEED-P001', 12, 0),
  ('SEED-S0001', 20, 'SEED-P002',  6, 5),
  ('SEED-S0001', 30, 'SEED-P009',  8, 0),
  ('SEED-S0002', 10, 'SEED-P003',  2, 0),
  ('SEED-S0002', 20, 'SEED-P004', 10, 10),
  ('SEED-S0003', 10, 'SEED-P006',  1, 0),
  ('SEED-S0003', 20, 'SEED-P001',  8, 0),
  ('SEED-S0003', 30, 'SEED-P008',  3, 0),
  ('SEED-S0004', 10, 'SEED-P005', 24, 15),
  ('SEED-S0005', 10, 'SEED-P002', 20, 10),
  ('SEED-S0005', 20, 'SEED-P007', 20, 10),
  ('SEED-S0005', 30, 'SEED-P010', 20, 0),
  ('SEED-S0006', 10, 'SEED-P004',  3, 0),
  ('SEED-S0007', 10, 'SEED-P001', 30, 12),
  ('SEED-S0007', 20, 'SEED-P004', 30, 12),
  ('SEED-S0008', 10, 'SEED-P008',  1, 0)
) AS v(order_name, seq, product_code, qty, discount)
JOIN sale_order o ON o.name = v.order_name
JOIN product_product pp ON pp.default_code = v.product_code
JOIN product_template pt ON pt.id = pp.product_tmpl_id
WHERE NOT EXISTS (SELECT 1 FROM sale_order_line l WHERE l.order_id = o.id AND l.product_id = pp.id);

-- Order totals from their lines (no taxes in the dev fixtures).
UPDATE sale_order o
SET amount_untaxed = t.total, amount_total = t.total, amount_tax = 0
FROM (SELECT order_id, sum(price_subtotal) AS total FROM sale_order_line GROUP BY order_id) t
WHERE t.order_id = o.id AND o.name LIKE 'SEED-S%' AND o.amount_total IS DISTINCT FROM t.total;
