use mail_parser::*;
fn dump(m: &Message, raw: &[u8], depth: usize) {
    for (i, p) in m.parts.iter().enumerate() {
        let kind = match &p.body { PartType::Text(_) => "text".to_string(), PartType::Html(_) => "html".into(), PartType::Binary(_) => "bin".into(), PartType::InlineBinary(_) => "ibin".into(), PartType::Message(_) => "msg".into(), PartType::Multipart(v) => format!("multi{:?}", v) };
        println!("{}#{} {} hdr={} body={} end={} enc={:?}", " ".repeat(depth*2), i, kind, p.offset_header, p.offset_body, p.offset_end, p.encoding);
        println!("{}  H={:?}", " ".repeat(depth*2), String::from_utf8_lossy(&raw[p.offset_header as usize..p.offset_body as usize]));
        println!("{}  B={:?}", " ".repeat(depth*2), String::from_utf8_lossy(&raw[p.offset_body as usize..(p.offset_end as usize).min(raw.len())]));
        for h in &p.headers { println!("{}  hdr {} field={} start={} end={} raw={:?}", " ".repeat(depth*2), h.name(), h.offset_field, h.offset_start, h.offset_end, String::from_utf8_lossy(&raw[h.offset_start as usize..h.offset_end as usize])); }
        if let PartType::Message(n) = &p.body { println!("{} nested raw_message len {} (is borrowed {})", " ".repeat(depth*2), n.raw_message.len(), matches!(n.raw_message, std::borrow::Cow::Borrowed(_))); dump(n, &raw, depth+1); }
    }
}
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let raw = std::fs::read(path).unwrap();
    let m = MessageParser::default().parse(&raw).unwrap();
    println!("raw len {}", raw.len());
    dump(&m, &raw, 0);
}
