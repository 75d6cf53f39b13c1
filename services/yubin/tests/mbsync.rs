//! A real synchronising client, mbsync (Debian's isync), against `yubin dev`: local Maildir folders
//! go up, server-side changes come down, and a second sync is a no-op.

mod common;

use common::{sample_message, start_dev};
use std::path::Path;
use std::process::Command;
use yubin_loadtest::client::Imap;

fn write_config(dir: &Path, port: u16) -> std::path::PathBuf {
    let mail = dir.join("mail");
    let config = format!(
        "IMAPAccount yubin\nHost 127.0.0.1\nPort {port}\nUser demo\nPass demo\nSSLType None\n\
AuthMechs LOGIN\n\nIMAPStore remote\nAccount yubin\n\nMaildirStore local\nPath {mail}/\n\
Inbox {mail}/INBOX\nSubFolders Verbatim\n\nChannel sync\nFar :remote:\nNear :local:\n\
Patterns *\nCreate Both\nExpunge Both\nSyncState *\n",
        mail = mail.display()
    );
    let path = dir.join("mbsyncrc");
    std::fs::write(&path, config).expect("write mbsyncrc");
    path
}

fn maildir(root: &Path, folder: &str, messages: &[Vec<u8>]) {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(root.join(folder).join(sub)).expect("maildir");
    }
    for (i, m) in messages.iter().enumerate() {
        let name = format!("1700000000.{i}_{i}.test");
        std::fs::write(root.join(folder).join("new").join(name), m).expect("message");
    }
}

fn mbsync(config: &Path) -> String {
    let out = Command::new("mbsync")
        .args(["-c", config.to_str().expect("utf-8"), "-a"])
        .output()
        .expect("mbsync is installed (scripts/test.sh installs isync)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "mbsync failed:\n{text}");
    text
}

fn strip_tuid(message: &[u8]) -> Vec<u8> {
    let Some(start) = message.windows(8).position(|w| w == b"X-TUID: ") else {
        return message.to_vec();
    };
    let end = message[start..]
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(message.len(), |p| start + p + 2);
    [&message[..start], &message[end..]].concat()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = ["cur", "new"]
        .iter()
        .flat_map(|s| std::fs::read_dir(dir.join(s)).into_iter().flatten())
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mbsync_round_trips_folders_messages_and_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dev = start_dev(&dir.path().join("data"));
    let config = write_config(dir.path(), dev.addr("imap").port());
    let mail = dir.path().join("mail");
    let inbox: Vec<Vec<u8>> = (0..6).map(sample_message).collect();
    let lists: Vec<Vec<u8>> = (10..13).map(sample_message).collect();
    maildir(&mail, "INBOX", &inbox);
    maildir(&mail, "Lists", &lists);

    mbsync(&config);

    let mut imap = Imap::login(dev.addr("imap"), "demo", "demo").await;
    let r = imap.ok("STATUS INBOX (MESSAGES)").await;
    assert!(r.find("MESSAGES 6").is_some(), "{r:?}");
    let r = imap.ok("STATUS Lists (MESSAGES)").await;
    assert!(r.find("MESSAGES 3").is_some(), "{r:?}");
    imap.ok("SELECT Lists").await;
    let r = imap.ok("FETCH 1:* BODY.PEEK[]").await;
    // mbsync inserts an `X-TUID:` header into what it uploads (to recognise the message on the
    // server); everything else must arrive exactly as it was on disk.
    let mut got: Vec<Vec<u8>> = r
        .untagged
        .iter()
        .flat_map(|l| l.literals.clone())
        .map(|m| strip_tuid(&m))
        .collect();
    let mut want = lists.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "bodies arrive byte-identical");

    // Server-side changes: a new message, a flag, a deletion.
    imap.ok("STORE 1 +FLAGS (\\Flagged)").await;
    imap.ok("STORE 2 +FLAGS (\\Deleted)").await;
    imap.ok("EXPUNGE").await;
    assert!(imap.append("Lists", "", &sample_message(20)).await.is_ok());

    mbsync(&config);
    let local = files_in(&mail.join("Lists"));
    assert_eq!(local.len(), 3, "one expunged, one new: {local:?}");
    // Maildir keeps flags after `:2,` in the file name; F is \Flagged.
    let flagged = local
        .iter()
        .filter(|n| n.rsplit_once(":2,").is_some_and(|(_, f)| f.contains('F')))
        .count();
    assert_eq!(flagged, 1, "the flag came down: {local:?}");

    // Nothing changed: a second sync must not duplicate anything.
    mbsync(&config);
    assert_eq!(files_in(&mail.join("Lists")).len(), 3);
    let r = imap.ok("STATUS Lists (MESSAGES)").await;
    assert!(r.find("MESSAGES 3").is_some(), "{r:?}");
}
