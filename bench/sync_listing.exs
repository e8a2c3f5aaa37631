# The listing rate of ObjectStoreX.Sync's coordinator, side by side for the two stores of
# `make bench-sync`: the key-ordered listing a run merges, counted to the end, timed in this VM.
#
#   elixir -pa _build/prod/lib/objectstorex/ebin bench/sync_listing.exs LOCAL_DIR S3_ENDPOINT BUCKET PREFIX
#
# Prints one JSON line: microseconds and objects for the local walk and for the S3 listing,
# flat (the default) and by directory (`listing: :tree`).
alias ObjectStoreX.Sync.Listing

[dir, endpoint, bucket, prefix] = System.argv()
{:ok, _} = Application.ensure_all_started(:objectstorex)

s3 =
  ObjectStoreX.new!(:s3,
    bucket: bucket,
    endpoint: endpoint,
    region: "us-east-1",
    access_key_id: System.fetch_env!("AWS_ACCESS_KEY_ID"),
    secret_access_key: System.fetch_env!("AWS_SECRET_ACCESS_KEY"),
    allow_http: true
  )

local = ObjectStoreX.new!(:local, root: dir)
count = fn chunks -> Enum.reduce(chunks, 0, &(length(&1) + &2)) end
{local_us, local_n} = :timer.tc(fn -> local |> Listing.chunks(nil, "source") |> count.() end)
{s3_us, s3_n} = :timer.tc(fn -> s3 |> Listing.chunks(prefix, "source") |> count.() end)

{tree_us, tree_n} = :timer.tc(fn -> s3 |> Listing.chunks(prefix, "source", :tree) |> count.() end)

IO.puts(
  ~s({"local_us":#{local_us},"local_objects":#{local_n},"s3_us":#{s3_us},"s3_objects":#{s3_n},) <>
    ~s("s3_tree_us":#{tree_us},"s3_tree_objects":#{tree_n}})
)
