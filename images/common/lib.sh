# Shell helpers shared by the image scripts: `. /usr/local/lib/mail/lib.sh`.
# build-images.sh passes this folder to every build as the context "common"; the images
# that use it copy it in with `COPY --from=common lib.sh /usr/local/lib/mail/lib.sh`.

# Put each secret in place of its placeholder __SECRET_<name>__ (the content of
# /run/secrets/<name>, empty if missing) in the files of $1 that have one; those files
# become mode 0640, group $2, before the secret is written. Pure bash string replacement:
# no character of a secret is special (no sed/awk expression is built from it).
# $3 = quote: the placeholders are inside "..." (dovecot), so escape \ and ".
# Each file keeps its modification time: postfix waits (0.3 s a try, up to a second) before
# reading a map configuration modified within the last second, in every process it starts.
fill_secrets() {
    local dir=$1 group=$2 quote=${3:-} f name text value mtime bs='\' dq='"'
    shopt -u patsub_replacement 2>/dev/null || true
    while IFS= read -r -d '' f; do
        chown root:"$group" "$f" && chmod 640 "$f"
        mtime=$(stat -c %Y "$f")
        text=$(<"$f")
        for name in $(grep -o '__SECRET_[A-Za-z0-9._-]*__' "$f" | sort -u); do
            name=${name#__SECRET_} && name=${name%__}
            value=""
            if [ -r "/run/secrets/$name" ]; then value=$(<"/run/secrets/$name"); fi
            if [ "$quote" = quote ]; then value=${value//"$bs"/"$bs$bs"} && value=${value//"$dq"/"$bs$dq"}; fi
            text=${text//"__SECRET_${name}__"/"$value"}
        done
        printf '%s\n' "$text" >"$f"
        touch -d "@$mtime" "$f"
    done < <(grep -rlZ -- __SECRET_ "$dir" || true)
}
