// Rebuild when a file is added to, changed in or removed from a folder the binary
// embeds at compile time: `sqlx::migrate!` embeds `migrations/` (what `sqlx migrate
// build-script` writes), and `src/http/console.rs` embeds the console's files
// (`console/app/`), of which the compiler tracks only those there at the last build.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=../console/app");
}
