-- Development customers (res_partner companies and a contact each). Re-runnable: keyed on ref.
INSERT INTO res_partner (name, complete_name, ref, type, is_company, active, street, zip, city, email, phone, website, lang, customer_rank, supplier_rank, create_date, write_date)
SELECT v.name, v.name, v.ref, 'contact', true, true, v.street, v.zip, v.city, v.email, v.phone, v.website, 'en_US', 1, 0, now(), now()
FROM (VALUES
  ('SEED-C001', 'Azure Interior',        '4557 De Silva St',       '94538', 'Fremont',       'azure.interior@example.com',   '+1 870-931-0505', 'https://azure-interior.example.com'),
  ('SEED-C002', 'Deco Addict',           '77 Santa Barbara Rd',    '94523', 'Pleasant Hill', 'deco.addict@example.com',      '+1 555-555-5555', 'https://deco-addict.example.com'),
  ('SEED-C003', 'Gemini Furniture',      '317 Fairchild Dr',       '94535', 'Fairfield',     'gemini.furniture@example.com', '+1 279-933-3181', 'https://gemini-furniture.example.com'),
  ('SEED-C004', 'Lumber Inc',            '1337 N Mission Rd',      '90033', 'Los Angeles',   'lumber-inc@example.com',       '+1 323-555-0142', NULL),
  ('SEED-C005', 'Ready Mat',             '7500 W Linne Road',      '95304', 'Tracy',         'ready.mat@example.com',        '+1 209-555-0175', 'https://readymat.example.com'),
  ('SEED-C006', 'The Jackson Group',     '1611 Peony Dr',          '95377', 'Tracy',         'jackson.group@example.com',    '+1 209-555-0199', NULL),
  ('SEED-C007', 'Wood Corner',           '1839 Arbor Way',         '95380', 'Turlock',       'wood.corner@example.com',      '+1 209-555-0128', 'https://woodcorner.example.com'),
  ('SEED-C008', 'Nordic Office Supply',  'Drottninggatan 12',      '11151', 'Stockholm',     'orders@nordic-office.example', '+46 8 555 012 34', NULL),
  ('SEED-C009', 'Atelier Lumière',       '18 rue des Lilas',       '69003', 'Lyon',          'contact@atelier-lumiere.example', '+33 4 55 50 12 12', NULL),
  ('SEED-C010', 'Brightline Schools',    '400 Learning Ave',       '60601', 'Chicago',       'purchasing@brightline.example', '+1 312-555-0110', 'https://brightline.example.com')
) AS v(ref, name, street, zip, city, email, phone, website)
WHERE NOT EXISTS (SELECT 1 FROM res_partner p WHERE p.ref = v.ref);

UPDATE res_partner SET commercial_partner_id = id WHERE ref LIKE 'SEED-C%' AND commercial_partner_id IS NULL;

-- One purchasing contact per company (keyed on ref too).
INSERT INTO res_partner (name, complete_name, ref, type, is_company, active, parent_id, commercial_partner_id, email, phone, lang, customer_rank, supplier_rank, create_date, write_date)
SELECT v.name, c.name || ', ' || v.name, v.ref, 'contact', false, true, c.id, c.id, v.email, c.phone, 'en_US', 0, 0, now(), now()
FROM (VALUES
  ('SEED-K001', 'SEED-C001', 'Brandon Freeman',  'brandon.freeman@example.com'),
  ('SEED-K002', 'SEED-C002', 'Douglas Fletcher', 'douglas.fletcher@example.com'),
  ('SEED-K003', 'SEED-C003', 'Edwin Hansen',     'edwin.hansen@example.com'),
  ('SEED-K004', 'SEED-C005', 'Kim Snyder',       'kim.snyder@example.com'),
  ('SEED-K005', 'SEED-C008', 'Astrid Lindqvist', 'astrid@nordic-office.example')
) AS v(ref, company_ref, name, email)
JOIN res_partner c ON c.ref = v.company_ref
WHERE NOT EXISTS (SELECT 1 FROM res_partner p WHERE p.ref = v.ref);
