-- Development products: a template and its single variant each, in the "All" category, sold by the unit.
-- Re-runnable: keyed on default_code (Internal Reference).
INSERT INTO product_template (name, description_sale, default_code, type, detailed_type, categ_id, list_price, sale_ok, purchase_ok, uom_id, uom_po_id, active, invoice_policy, sale_line_warn, create_date, write_date)
SELECT jsonb_build_object('en_US', v.name), jsonb_build_object('en_US', v.description), v.code, v.type, v.type,
       (SELECT min(id) FROM product_category WHERE name = 'All' AND parent_id IS NULL),
       v.price, true, true,
       (SELECT min(id) FROM uom_uom WHERE name->>'en_US' = 'Units'),
       (SELECT min(id) FROM uom_uom WHERE name->>'en_US' = 'Units'),
       true, v.policy, 'no-message', now(), now()
FROM (VALUES
  ('SEED-P001', 'Office Chair',              'Ergonomic chair with lumbar support and adjustable armrests', 'consu',   249.00, 'order'),
  ('SEED-P002', 'Standing Desk',             'Electric height-adjustable desk, 160 x 80 cm',                'consu',   689.00, 'order'),
  ('SEED-P003', 'Large Cabinet',             'Lockable steel cabinet with four shelves',                     'consu',   320.00, 'order'),
  ('SEED-P004', 'Desk Lamp',                 'LED lamp with dimmer and USB-C charging port',                 'consu',    49.90, 'order'),
  ('SEED-P005', 'Acoustic Panel',            'Felt wall panel, 60 x 60 cm, anthracite',                      'consu',    89.00, 'order'),
  ('SEED-P006', 'Conference Table',          'Oak conference table for eight',                               'consu',  1450.00, 'order'),
  ('SEED-P007', 'Monitor Arm',               'Dual monitor arm, gas spring',                                 'consu',   119.00, 'order'),
  ('SEED-P008', 'Office Design Consultation','One hour with an interior designer (on site or remote)',       'service',  95.00, 'delivery'),
  ('SEED-P009', 'Furniture Assembly',        'Assembly and installation, per hour',                          'service',  65.00, 'delivery'),
  ('SEED-P010', 'Extended Warranty',         'Three additional years of warranty on furniture',              'service', 150.00, 'order')
) AS v(code, name, description, type, price, policy)
WHERE NOT EXISTS (SELECT 1 FROM product_template t WHERE t.default_code = v.code);

INSERT INTO product_product (product_tmpl_id, default_code, combination_indices, active, create_date, write_date)
SELECT t.id, t.default_code, '', true, now(), now()
FROM product_template t
WHERE t.default_code LIKE 'SEED-P%'
  AND NOT EXISTS (SELECT 1 FROM product_product p WHERE p.default_code = t.default_code);
