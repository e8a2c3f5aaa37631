defmodule ObjectStoreX.GuaranteesTest do
  # What the README's "Guarantees" promise for bad input: non-bang functions return
  # {:error, %ObjectStoreX.Error{reason: :invalid_argument}} naming the argument and never
  # raise; streams raise that error at once; nil means "not set"; documented maxima and
  # timeouts are enforced before any request starts; secrets never appear in messages.
  use ExUnit.Case, async: true

  import ObjectStoreX.TestHelpers

  alias ObjectStoreX.{Error, TestBackends}
  alias ObjectStoreX.Stream, as: OSXStream

  @max_timeout 4_294_967_295

  setup do
    store = TestBackends.store!(:memory)
    :ok = ObjectStoreX.put(store, "exists.txt", "0123456789")
    dir = TestBackends.tmp_dir!("guarantees")
    on_exit(fn -> File.rm_rf!(dir) end)
    %{store: store, dir: dir}
  end

  defp assert_invalid(fun, mentions) do
    assert {:error, %Error{reason: :invalid_argument, message: message}} = returned(fun)

    for word <- List.wrap(mentions) do
      assert message =~ word, "message #{inspect(message)} should name #{inspect(word)}"
    end

    message
  end

  defp assert_raises_invalid(fun, mentions) do
    error = assert_raise Error, fun
    assert error.reason == :invalid_argument

    for word <- List.wrap(mentions) do
      assert error.message =~ word, "message #{inspect(error.message)} should name #{word}"
    end

    error.message
  end

  defp mailbox, do: Process.info(self(), :messages) |> elem(1)

  describe "timeouts" do
    test "above 2^32 - 1 ms are refused before any request starts", ctx do
      %{store: store, dir: dir} = ctx
      file = Path.join(dir, "up.bin")
      File.write!(file, "data")

      for t <- [@max_timeout + 1, 2 ** 64, 2 ** 70] do
        calls = [
          fn -> ObjectStoreX.put(store, "new.txt", "data", timeout: t) end,
          fn -> ObjectStoreX.put_with_result(store, "new.txt", "data", timeout: t) end,
          fn -> ObjectStoreX.get(store, "exists.txt", timeout: t) end,
          fn -> ObjectStoreX.head(store, "exists.txt", timeout: t) end,
          fn -> ObjectStoreX.get_ranges(store, "exists.txt", [{0, 1}], timeout: t) end,
          fn -> ObjectStoreX.delete(store, "exists.txt", timeout: t) end,
          fn -> ObjectStoreX.delete_many(store, ["exists.txt"], timeout: t) end,
          fn -> ObjectStoreX.copy(store, "exists.txt", "new.txt", timeout: t) end,
          fn -> ObjectStoreX.rename(store, "exists.txt", "new.txt", timeout: t) end,
          fn -> ObjectStoreX.list(store, timeout: t) end,
          fn -> ObjectStoreX.list_with_delimiter(store, timeout: t) end,
          fn -> ObjectStoreX.upload_file(store, "new.txt", file, timeout: t) end,
          fn -> ObjectStoreX.transfer(store, "exists.txt", store, "new.txt", timeout: t) end,
          fn ->
            ObjectStoreX.download_file(store, "exists.txt", Path.join(dir, "d"), timeout: t)
          end,
          fn -> OSXStream.upload(["data"], store, "new.txt", timeout: t) end
        ]

        for fun <- calls, do: assert_invalid(fun, ":timeout")

        assert_raises_invalid(fn -> OSXStream.download(store, "exists.txt", timeout: t) end, [
          ":timeout"
        ])

        assert_raises_invalid(fn -> OSXStream.lines(store, "exists.txt", timeout: t) end, [
          ":timeout"
        ])

        assert_raises_invalid(fn -> OSXStream.list_stream(store, timeout: t) end, ":timeout")

        assert_raises_invalid(
          fn -> Enum.into(["data"], OSXStream.upload_sink(store, "new.txt", timeout: t)) end,
          ":timeout"
        )
      end

      # nothing ran: nothing written, moved or deleted, and no reply left behind
      assert {:ok, [%ObjectStoreX.Meta{location: "exists.txt"}]} = ObjectStoreX.list(store)
      assert {:ok, "0123456789", _} = ObjectStoreX.get(store, "exists.txt")
      refute File.exists?(Path.join(dir, "d"))
      assert mailbox() == []
    end

    test "2^32 - 1 ms and :infinity are accepted", %{store: store} do
      assert :ok = ObjectStoreX.put(store, "new.txt", "data", timeout: @max_timeout)
      assert {:ok, "data", _} = ObjectStoreX.get(store, "new.txt", timeout: :infinity)

      assert ["data"] =
               OSXStream.download(store, "new.txt", timeout: @max_timeout) |> Enum.to_list()

      assert [_] = OSXStream.list_stream(store, timeout: :infinity) |> Enum.take(1)
      assert mailbox() == []
    end

    test "store timeouts in ms above 2^32 - 1 are refused, naming the option" do
      for key <- [:timeout, :connect_timeout, :read_timeout, :pool_idle_timeout] do
        assert_invalid(
          fn ->
            ObjectStoreX.new(:http, [{:url, "http://127.0.0.1:1/"}, {key, @max_timeout + 1}])
          end,
          inspect(key)
        )

        assert_invalid(
          fn -> ObjectStoreX.new(:s3, [{:bucket, "b"}, {key, 2 ** 64}]) end,
          inspect(key)
        )

        assert {:ok, _} =
                 ObjectStoreX.new(:http, [{:url, "http://127.0.0.1:1/"}, {key, @max_timeout}])
      end
    end
  end

  describe "retry settings" do
    defp http_store(retry),
      do:
        ObjectStoreX.new(:http,
          url: "http://127.0.0.1:1/",
          allow_http: true,
          connect_timeout: 500,
          retry: retry
        )

    test "settings that would make object_store panic on a retry are refused by name" do
      cases = [
        {[base: 1.0], ":retry :base"},
        {[base: 1], ":retry :base"},
        {[base: 0.5], ":retry :base"},
        {[base: -2.0], ":retry :base"},
        {[base: :fast], ":retry :base"},
        {[base: 10 ** 400], ":retry :base"},
        {[init_backoff: 0], ":retry :init_backoff"},
        {[init_backoff: -1], ":retry :init_backoff"},
        {[init_backoff: 1.5], ":retry :init_backoff"},
        {[init_backoff: 200, max_backoff: 100], ":retry :max_backoff"},
        # the default max_backoff (15 s) is below this init_backoff
        {[init_backoff: 20_000], ":retry :max_backoff"},
        {[max_backoff: 0], ":retry :max_backoff"},
        {[max_retries: -1], ":retry :max_retries"},
        {[max_retries: 2 ** 64], ":retry :max_retries"},
        {[retry_timeout: 2 ** 64], ":retry :retry_timeout"}
      ]

      for {retry, name} <- cases do
        message = assert_invalid(fn -> http_store(retry) end, name)
        assert message =~ "must", message
      end
    end

    test "the smallest valid settings retry without a panic" do
      # init_backoff == max_backoff and a base just above 1: every draw has a non-empty range.
      assert {:ok, store} =
               http_store(max_retries: 2, init_backoff: 1, max_backoff: 1, base: 1.000001)

      assert {:error, %Error{reason: :network_error}} = ObjectStoreX.get(store, "x")

      assert {:ok, store} = http_store(max_retries: 1, init_backoff: 5, base: 2)
      assert {:error, %Error{reason: :network_error}} = ObjectStoreX.get(store, "x")
    end
  end

  describe "nil means not set" do
    test "store options left nil take their defaults", %{dir: dir} do
      assert {:ok, %ObjectStoreX.Store{backend: :s3, bucket: "b", prefix: nil}} =
               ObjectStoreX.new(:s3,
                 bucket: "b",
                 region: nil,
                 endpoint: nil,
                 access_key_id: nil,
                 secret_access_key: nil,
                 session_token: nil,
                 allow_http: nil,
                 timeout: nil,
                 retry: [base: nil, max_retries: nil],
                 from_env: nil,
                 prefix: nil
               )

      assert {:ok, %ObjectStoreX.Store{backend: :local} = local} =
               ObjectStoreX.new(:local, root: Path.join(dir, "root"), prefix: nil)

      assert :ok = ObjectStoreX.put(local, "a.txt", "a")

      assert {:ok, %ObjectStoreX.Store{backend: :http}} =
               ObjectStoreX.new(:http,
                 url: "http://127.0.0.1:1/",
                 proxy_url: nil,
                 connect_timeout: nil,
                 retry: nil
               )

      # :endpoint cannot be combined with the emulator, unless it is not set
      assert {:ok, %ObjectStoreX.Store{backend: :azure}} =
               ObjectStoreX.new(:azure,
                 container: "c",
                 use_emulator: true,
                 endpoint: nil,
                 sas_token: nil
               )

      # a required option left nil is missing, not of the wrong type
      message = assert_invalid(fn -> ObjectStoreX.new(:local, root: nil) end, ":root")
      assert message =~ "required"

      # nil options do not override what the URL says
      assert {:ok, %ObjectStoreX.Store{bucket: "bucket", prefix: "some/prefix"}} =
               ObjectStoreX.from_url("s3://bucket/some/prefix", prefix: nil, region: nil)
    end

    test "operation options left nil take their defaults", %{store: store, dir: dir} do
      assert :ok =
               ObjectStoreX.put(store, "p.txt", "data",
                 mode: nil,
                 content_type: nil,
                 metadata: nil,
                 tags: nil,
                 timeout: nil
               )

      assert {:ok, "data", _} =
               ObjectStoreX.get(store, "p.txt",
                 range: nil,
                 if_match: nil,
                 if_modified_since: nil,
                 version: nil,
                 head: nil,
                 timeout: nil
               )

      assert {:ok, [_, _]} = ObjectStoreX.list(store, prefix: nil, offset: nil)
      assert :ok = ObjectStoreX.copy(store, "p.txt", "q.txt", timeout: nil)

      target = Path.join(dir, "p.txt")

      assert {:ok, %ObjectStoreX.Meta{size: 4}} =
               ObjectStoreX.download_file(store, "p.txt", target,
                 chunk_size: nil,
                 concurrency: nil,
                 on_progress: nil
               )

      assert {:ok, %{bytes: 4}} =
               ObjectStoreX.upload_file(store, "r.txt", target, part_size: nil, hash: nil)

      # transfer/5 hashes by default: nil keeps the default; false turns it off
      sha256 = Base.encode16(:crypto.hash(:sha256, "data"), case: :lower)

      assert {:ok, %{digest: ^sha256}} =
               ObjectStoreX.transfer(store, "p.txt", store, "s", hash: nil)

      assert {:ok, %{digest: nil}} =
               ObjectStoreX.transfer(store, "p.txt", store, "t", hash: false)
    end

    test "stream options left nil take their defaults" do
      local = TestBackends.store!(:local)
      data = :crypto.strong_rand_bytes(9 * 1_048_576)
      :ok = ObjectStoreX.put(local, "big.bin", data)

      # the default chunk size is 2 MiB: five chunks
      chunks =
        OSXStream.download(local, "big.bin", chunk_size: nil, prefetch: nil, range: nil)
        |> Enum.to_list()

      assert {Enum.map(chunks, &byte_size/1), IO.iodata_to_binary(chunks)} ==
               {[2, 2, 2, 2, 1] |> Enum.map(&(&1 * 1_048_576)), data}

      :ok = ObjectStoreX.put(local, "log.txt", "one\ntwo\n")

      assert ["one", "two"] =
               OSXStream.lines(local, "log.txt",
                 max_line_length: nil,
                 decompress: nil,
                 chunk_size: nil
               )
               |> Enum.to_list()

      assert :ok =
               OSXStream.upload(["x", "y"], local, "up.txt",
                 part_size: nil,
                 max_concurrency: nil,
                 hash: nil
               )

      assert [_ | _] =
               OSXStream.list_stream(local, page_size: nil, prefetch: nil, timeout: nil)
               |> Enum.to_list()

      sink = OSXStream.upload_sink(local, "sink.txt", part_size: nil, on_complete: nil)
      assert %{result: %{bytes: 2}} = Enum.into(["a", "b"], sink)
    end
  end

  describe "invalid UTF-8 in option strings" do
    test "is refused in Elixir, naming the option", %{store: store, dir: dir} do
      bad = <<"ok", 255>>
      file = Path.join(dir, "up.bin")
      File.write!(file, "data")

      cases = [
        {fn -> ObjectStoreX.list(store, prefix: bad) end, ":prefix"},
        {fn -> ObjectStoreX.list(store, offset: bad) end, ":offset"},
        {fn -> ObjectStoreX.list_with_delimiter(store, prefix: bad) end, ":prefix"},
        {fn -> ObjectStoreX.get(store, "exists.txt", if_match: bad) end, ":if_match"},
        {fn -> ObjectStoreX.get(store, "exists.txt", if_none_match: bad) end, ":if_none_match"},
        {fn -> ObjectStoreX.get(store, "exists.txt", version: bad) end, ":version"},
        {fn -> ObjectStoreX.put(store, "a", "b", content_type: bad) end, ":content_type"},
        {fn -> ObjectStoreX.put(store, "a", "b", cache_control: bad) end, ":cache_control"},
        {fn -> ObjectStoreX.put(store, "a", "b", metadata: %{"k" => bad}) end, ":metadata"},
        {fn -> ObjectStoreX.put(store, "a", "b", metadata: %{bad => "v"}) end, ":metadata"},
        {fn -> ObjectStoreX.put(store, "a", "b", tags: %{"k" => bad}) end, ":tags"},
        {fn -> ObjectStoreX.put(store, "a", "b", mode: {:update, bad}) end, ":mode"},
        {fn -> ObjectStoreX.upload_file(store, "a", file, content_type: bad) end,
         ":content_type"},
        {fn -> OSXStream.upload(["b"], store, "a", metadata: %{"k" => bad}) end, ":metadata"},
        {fn -> ObjectStoreX.new(:memory, prefix: bad) end, ":prefix"},
        {fn -> ObjectStoreX.new(:local, root: bad) end, ":root"},
        {fn -> ObjectStoreX.new(:http, url: "http://127.0.0.1/" <> bad) end, ":url"},
        {fn -> ObjectStoreX.new(:http, url: "http://127.0.0.1/", proxy_url: bad) end,
         ":proxy_url"},
        {fn -> ObjectStoreX.new(:s3, bucket: "b", region: bad) end, ":region"},
        {fn -> ObjectStoreX.new(:s3, bucket: bad) end, ":bucket"},
        {fn -> ObjectStoreX.new(:azure, container: "c", account: bad) end, ":account"},
        {fn -> ObjectStoreX.from_url("s3://bucket/" <> bad) end, "url"},
        {fn -> ObjectStoreX.from_url("s3://bucket/x", region: bad) end, ":region"}
      ]

      for {fun, name} <- cases do
        message = assert_invalid(fun, name)
        assert message =~ "UTF-8", message
      end

      assert_raises_invalid(fn -> OSXStream.list_stream(store, prefix: bad) end, [
        ":prefix",
        "UTF-8"
      ])

      assert_raises_invalid(
        fn -> OSXStream.download(store, "exists.txt", hash: :md5, verify: bad) end,
        [":verify", "UTF-8"]
      )

      assert {:error, %Error{reason: :not_found}} = ObjectStoreX.head(store, "a")
    end
  end

  describe "integers above the documented maxima" do
    test "are :invalid_argument naming the argument", %{store: store, dir: dir} do
      gib = 1_073_741_824
      file = Path.join(dir, "up.bin")
      File.write!(file, "data")
      target = Path.join(dir, "down.bin")

      cases = [
        {fn -> ObjectStoreX.get_ranges(store, "exists.txt", [{0, 2 ** 64}]) end, "ranges"},
        {fn -> ObjectStoreX.get_ranges(store, "exists.txt", [{0, 1}, {2 ** 70, 2 ** 71}]) end,
         "ranges"},
        {fn -> ObjectStoreX.get(store, "exists.txt", range: {0, 2 ** 64 - 1}) end, ":range"},
        {fn -> ObjectStoreX.get(store, "exists.txt", range: {:offset, 2 ** 64}) end, ":range"},
        {fn -> ObjectStoreX.get(store, "exists.txt", range: {:suffix, 2 ** 70}) end, ":range"},
        {fn -> ObjectStoreX.sign_url(store, :get, "exists.txt", 604_801) end, "expires_in"},
        {fn -> ObjectStoreX.sign_url(store, :get, "exists.txt", 2 ** 64) end, "expires_in"},
        {fn -> ObjectStoreX.download_file(store, "exists.txt", target, chunk_size: gib + 1) end,
         ":chunk_size"},
        {fn -> ObjectStoreX.download_file(store, "exists.txt", target, chunk_size: 2 ** 64) end,
         ":chunk_size"},
        {fn -> ObjectStoreX.download_file(store, "exists.txt", target, concurrency: 1_001) end,
         ":concurrency"},
        {fn -> ObjectStoreX.download_file(store, "exists.txt", target, concurrency: 2 ** 64) end,
         ":concurrency"},
        {fn -> ObjectStoreX.upload_file(store, "a", file, part_size: 5 * gib + 1) end,
         ":part_size"},
        {fn -> ObjectStoreX.upload_file(store, "a", file, max_concurrency: 1_001) end,
         ":max_concurrency"},
        {fn -> ObjectStoreX.transfer(store, "exists.txt", store, "a", part_size: 2 ** 64) end,
         ":part_size"},
        {fn -> OSXStream.upload(["b"], store, "a", max_concurrency: 2 ** 64) end,
         ":max_concurrency"},
        {fn -> OSXStream.upload(["b"], store, "a", size_hint: 2 ** 64) end, ":size_hint"},
        # would need parts larger than 5 GiB
        {fn -> OSXStream.upload(["b"], store, "a", size_hint: 10_000 * 5 * gib + 1) end,
         ":size_hint"}
      ]

      for {fun, name} <- cases do
        message = assert_invalid(fun, name)
        assert message =~ "at most", message
      end

      for {opts, name} <- [
            {[chunk_size: gib + 1], ":chunk_size"},
            {[chunk_size: 2 ** 64], ":chunk_size"},
            {[prefetch: 1_001], ":prefetch"},
            {[concurrency: 1_001], ":concurrency"},
            {[range: {0, 2 ** 64}], ":range"}
          ] do
        assert_raises_invalid(fn -> OSXStream.download(store, "exists.txt", opts) end, [
          name,
          "at most"
        ])

        assert_raises_invalid(fn -> OSXStream.lines(store, "exists.txt", opts) end, [
          name,
          "at most"
        ])
      end

      assert_raises_invalid(fn -> OSXStream.list_stream(store, page_size: 100_001) end, [
        ":page_size",
        "at most"
      ])

      assert_raises_invalid(fn -> OSXStream.list_stream(store, prefetch: 1_001) end, [
        ":prefetch",
        "at most"
      ])

      assert_raises_invalid(
        fn -> Enum.into(["b"], OSXStream.upload_sink(store, "a", part_size: 5 * gib + 1)) end,
        [":part_size", "at most"]
      )

      assert {:error, %Error{reason: :not_found}} = ObjectStoreX.head(store, "a")
      refute File.exists?(target)
      assert mailbox() == []
    end

    test "the maxima themselves are accepted", %{store: store, dir: dir} do
      assert {:ok, "0123456789", _} =
               ObjectStoreX.get(store, "exists.txt", range: {0, 2 ** 64 - 2})

      assert {:ok, ["0123456789"]} =
               ObjectStoreX.get_ranges(store, "exists.txt", [{0, 2 ** 64 - 2}])

      # the memory store cannot sign: the expiry itself was accepted
      assert {:error, %Error{reason: :not_supported}} =
               ObjectStoreX.sign_url(store, :get, "exists.txt", 604_800)

      assert {:ok, %ObjectStoreX.Meta{size: 10}} =
               ObjectStoreX.download_file(store, "exists.txt", Path.join(dir, "d"),
                 concurrency: 1_000
               )

      assert ["0123456789"] =
               OSXStream.download(store, "exists.txt", prefetch: 1_000, concurrency: 1_000)
               |> Enum.to_list()

      assert [_] =
               OSXStream.list_stream(store, page_size: 100_000, prefetch: 1_000) |> Enum.to_list()

      assert :ok =
               OSXStream.upload(["b"], store, "a",
                 max_concurrency: 1_000,
                 part_size: 5 * 1_073_741_824,
                 size_hint: 10_000 * 5 * 1_073_741_824
               )
    end
  end

  describe "arguments of the wrong shape" do
    test "non-keyword options and improper lists return an error, never raise", ctx do
      %{store: store, dir: dir} = ctx
      file = Path.join(dir, "up.bin")
      File.write!(file, "data")

      cases = [
        {fn -> ObjectStoreX.upload_file(store, "k", file, :bad) end, "option"},
        {fn -> ObjectStoreX.upload_file(store, "k", file, [1, 2]) end, "option"},
        {fn -> ObjectStoreX.transfer(store, "exists.txt", store, "k", %{}) end, "option"},
        {fn -> ObjectStoreX.transfer(store, "exists.txt", store, "k", [:x]) end, "option"},
        {fn -> ObjectStoreX.from_url("memory://", [1]) end, "option"},
        {fn -> ObjectStoreX.from_url("memory://", :bad) end, "option"},
        {fn -> ObjectStoreX.new(:memory, [:prefix]) end, "option"},
        {fn -> ObjectStoreX.get_ranges(store, "exists.txt", [{0, 1} | {2, 3}]) end, "ranges"},
        {fn -> ObjectStoreX.delete_many(store, ["exists.txt" | "b"]) end, "paths"},
        {fn -> ObjectStoreX.new(:http, url: "http://127.0.0.1/", retry: :fast) end, ":retry"},
        {fn -> OSXStream.upload(:not_enumerable, store, "k") end, "Enumerable"},
        {fn ->
           ObjectStoreX.get(store, "exists.txt", if_modified_since: struct(DateTime, year: :x))
         end, ":if_modified_since"}
      ]

      for {fun, name} <- cases, do: assert_invalid(fun, name)

      assert_raises_invalid(fn -> OSXStream.download(store, "exists.txt", :bad) end, "option")
      assert_raises_invalid(fn -> OSXStream.lines(store, "exists.txt", %{}) end, "option")
      assert_raises_invalid(fn -> OSXStream.list_stream(store, [1]) end, "option")
      assert {:ok, "0123456789", _} = ObjectStoreX.get(store, "exists.txt")
      assert {:error, %Error{reason: :not_found}} = ObjectStoreX.head(store, "k")
    end

    test "a hand-built store struct gives an error, not an ArgumentError" do
      fake = %ObjectStoreX.Store{backend: :memory, resource: make_ref()}

      assert_invalid(fn -> OSXStream.upload(["x"], fake, "a") end, "store")

      assert_raises_invalid(
        fn -> OSXStream.download(fake, "a") |> Enum.to_list() end,
        "store"
      )
    end

    test "a store from another node gives an error naming the node" do
      # A reference as another node's store arrives: the same term with that node's name.
      <<131, 90, len::16, 100, size::16, _node::binary-size(size), rest::binary>> =
        :erlang.term_to_binary(make_ref())

      name = "elsewhere@127.0.0.1"

      foreign =
        :erlang.binary_to_term(<<131, 90, len::16, 100, 19::16, name::binary, rest::binary>>)

      assert node(foreign) == :"elsewhere@127.0.0.1"
      store = %ObjectStoreX.Store{backend: :memory, resource: foreign}

      assert {:error, %Error{reason: :invalid_argument, message: message}} =
               ObjectStoreX.get(store, "a")

      assert message =~ "elsewhere@127.0.0.1"
      assert_raises_invalid(fn -> OSXStream.list_stream(store) |> Enum.to_list() end, "store")
    end
  end

  describe "values that would make an invalid request" do
    # Before, object_store panicked building the request (`:internal`); now they are refused
    # by name before anything is sent. The store at a closed port proves nothing was sent: a
    # request would fail with :network_error instead.
    setup do
      %{s3: closed_port_s3_store!()}
    end

    test "control characters in header values", %{s3: s3} do
      assert_invalid(fn -> ObjectStoreX.put(s3, "k", "", content_disposition: "a\r\nX: 1") end, [
        ":content_disposition",
        "control"
      ])

      assert_invalid(
        fn -> ObjectStoreX.put(s3, "k", "", metadata: %{"m" => "a\nb"}) end,
        "control"
      )

      assert_invalid(
        fn -> ObjectStoreX.put(s3, "k", "", metadata: %{"a b" => "v"}) end,
        ":metadata"
      )

      assert_invalid(fn -> ObjectStoreX.get(s3, "k", if_match: "\"e\"\n") end, ":if_match")

      assert_invalid(
        fn -> ObjectStoreX.put(s3, "k", "", mode: {:update, "e\r"}) end,
        ":mode"
      )

      assert_invalid(fn -> OSXStream.upload(["x"], s3, "k", cache_control: "\0") end, "control")
      assert_invalid(fn -> ObjectStoreX.put(s3, "k", "", metadata: %URI{}) end, ":metadata")
      assert_invalid(fn -> ObjectStoreX.put(s3, "k", "", tags: %URI{}) end, ":tags")
      # A tab is allowed in a header value.
      assert {:error, %Error{reason: :network_error}} =
               ObjectStoreX.put(s3, "k", "", content_disposition: "a\tb")
    end

    test "every string option of a network store at hostile values: refused, or data" do
      # Each store has an address on this machine and no retries. GCS stores and proxies are
      # only built: their requests would leave the machine (Google's token service, a DNS
      # lookup of the proxy).
      base = %{
        s3: closed_port_opts(:s3),
        azure: closed_port_opts(:azure),
        gcs: [bucket: "b", from_env: false, retry: [max_retries: 0]],
        http: closed_port_opts(:http)
      }

      values = [
        String.duplicate("v", 2048),
        String.duplicate("é", 1024),
        String.duplicate("v", 70_000),
        "a\r\nb",
        "a\0b",
        "a\tb",
        " ",
        "::",
        "%",
        "a#b",
        "\u{FEFF}"
      ]

      not_strings =
        [:retry, :from_env, :allow_http, :use_emulator, :skip_signature] ++
          [:virtual_hosted_style_request, :timeout, :connect_timeout, :read_timeout] ++
          [:pool_idle_timeout]

      requests = [
        fn s -> ObjectStoreX.head(s, "k", timeout: 5_000) end,
        fn s -> ObjectStoreX.put(s, "k", "x", timeout: 5_000, content_type: "t/x") end,
        fn s -> ObjectStoreX.list(s, timeout: 5_000) end,
        fn s -> ObjectStoreX.copy(s, "k", "k2", timeout: 5_000) end,
        fn s -> ObjectStoreX.sign_url(s, :get, "k", 60) end
      ]

      for {provider, opts} <- base,
          key <- ObjectStoreX.Store.allowed_options(provider) -- not_strings,
          value <- values do
        label = "#{provider} #{key}=#{inspect(value, printable_limit: 12)}"

        case returned(fn -> ObjectStoreX.new(provider, Keyword.put(opts, key, value)) end) do
          {:error, %Error{reason: reason}} ->
            assert reason in [:invalid_argument, :invalid_path, :generic], label

          {:ok, store} when provider == :gcs or key == :proxy_url ->
            assert %ObjectStoreX.Store{} = store

          {:ok, store} ->
            for request <- requests do
              case returned(fn -> request.(store) end) do
                {:error, %Error{reason: reason} = e} ->
                  refute reason == :internal, "#{label}: #{e.message}"

                ok ->
                  assert ok == :ok or elem(ok, 0) == :ok, label
              end
            end
        end
      end
    end

    test "metadata keys longer than 1024 bytes", %{s3: s3} do
      long = String.duplicate("k", 70_000)
      assert_invalid(fn -> ObjectStoreX.put(s3, "k", "", metadata: %{long => "v"}) end, "1024")

      assert {:error, %Error{reason: :network_error}} =
               ObjectStoreX.put(s3, "k", "", metadata: %{String.duplicate("k", 1024) => "v"})
    end

    test "attributes and metadata beyond ASCII on Azure, which sends them as ASCII", %{s3: s3} do
      azure = ObjectStoreX.new!(:azure, closed_port_opts(:azure))

      assert_invalid(fn -> ObjectStoreX.put(azure, "k", "", content_type: "café") end, [
        ":content_type",
        "ASCII"
      ])

      assert_invalid(
        fn -> ObjectStoreX.put(azure, "k", "", metadata: %{"m" => "é"}) end,
        [":metadata", "ASCII"]
      )

      assert_invalid(
        fn -> OSXStream.upload(["x"], azure, "k", content_disposition: "ü") end,
        ":content_disposition"
      )

      # S3 sends them as they are; only the closed port stops these.
      assert {:error, %Error{reason: :network_error}} =
               ObjectStoreX.put(s3, "k", "", content_type: "café")

      assert {:error, %Error{reason: :network_error}} =
               ObjectStoreX.put(azure, "k", "", content_type: "text/plain")
    end

    test "version ids longer than 1024 bytes", %{s3: s3} do
      # Sent in the URI: past 64 KiB of it the request could not be built at all.
      long = String.duplicate("é", 20_000)

      assert_invalid(fn -> ObjectStoreX.get(s3, "k", version: long) end, [":version", "1024"])

      assert_invalid(
        fn -> ObjectStoreX.put(s3, "k", "", mode: {:update, %{etag: "e", version: long}}) end,
        [":mode", "version", "1024"]
      )

      assert_invalid(
        fn -> ObjectStoreX.put(s3, "k", "", mode: {:update, %{etag: nil, version: long}}) end,
        [":mode", "version"]
      )

      at_limit = String.duplicate("v", 1024)

      assert {:error, %Error{reason: :network_error}} =
               ObjectStoreX.get(s3, "k", version: at_limit)
    end

    test "store addresses longer than 2048 bytes" do
      long = String.duplicate("b", 70_000)

      for {kind, opts, key} <- [
            {:s3, [bucket: "b", endpoint: "http://127.0.0.1:1/" <> long], ":endpoint"},
            {:azure, [account: "a", container: long, use_emulator: true], ":container"},
            {:http, [url: "http://127.0.0.1:1/" <> long], ":url"}
          ] do
        assert_invalid(fn -> ObjectStoreX.Store.new(kind, opts) end, [key, "2048"])
      end
    end

    test "store settings that would be sent unescaped in every request" do
      # A bucket "a#b" would have sent GET /a for every key; "127.0.0.1:9000" (no scheme) made
      # every request fail with :internal. Now refused when the store is built.
      s3 = closed_port_opts(:s3)

      azure = [
        account: "a",
        container: "c",
        access_key: Base.encode64("k"),
        use_emulator: true,
        from_env: false
      ]

      for {kind, opts, key} <- [
            {:s3, [endpoint: "127.0.0.1:9000"], ":endpoint"},
            {:s3, [endpoint: "http://127.0.0.1:1/ x"], ":endpoint"},
            {:s3, [endpoint: "http://127.0.0.1:1?x=1"], ":endpoint"},
            {:s3, [endpoint: "http://127.0.0.1:1#f"], ":endpoint"},
            {:s3, [endpoint: "ftp://127.0.0.1:1"], ":endpoint"},
            {:s3, [bucket: "a#b"], ":bucket"},
            {:s3, [bucket: "a b"], ":bucket"},
            {:s3, [bucket: "a/b"], ":bucket"},
            {:s3, [bucket: String.duplicate("b", 256)], ":bucket"},
            {:s3, [region: "us\r\nX: 1"], ":region"},
            {:s3, [access_key_id: "a\0b"], ":access_key_id"},
            {:s3, [session_token: "t\n"], ":session_token"},
            {:gcs, [bucket: "a?b"], ":bucket"},
            {:azure, [account: "a\r\nb"], ":account"},
            {:azure, [bearer_token: "t\0"], ":bearer_token"},
            {:azure, [use_emulator: false, endpoint: "localhost:10000"], ":endpoint"},
            {:http, [url: "localhost:8080/dav"], ":url"},
            {:http, [url: "mailto:x"], ":url"}
          ] do
        base =
          case kind do
            :azure -> azure
            :gcs -> [bucket: "b", from_env: false]
            :http -> []
            :s3 -> s3
          end

        message =
          assert_invalid(fn -> ObjectStoreX.Store.new(kind, Keyword.merge(base, opts)) end, key)

        # Never the value: some of these are credentials.
        for secret <- ["X: 1", "a\0b", "t\n"], do: refute(message =~ secret)
      end

      # At their limits they build, and a request fails only for want of a server.
      for opts <- [
            [bucket: String.duplicate("b", 255)],
            [bucket: "Legacy_Name.with-dots"],
            [bucket: "tenant:bucket"],
            [endpoint: "http://user:pass@127.0.0.1:1"],
            [endpoint: "http://[::1]:1/base"]
          ] do
        store = ObjectStoreX.new!(:s3, Keyword.merge(s3, opts))
        assert {:error, %Error{reason: :network_error}} = ObjectStoreX.get(store, "k")
      end
    end

    test "paths and prefixes longer than 1024 bytes", %{s3: s3, store: store} do
      long = String.duplicate("é", 513)

      for fun <- [
            fn -> ObjectStoreX.head(s3, long) end,
            fn -> ObjectStoreX.put(store, long, "x") end,
            fn -> ObjectStoreX.list(s3, prefix: long) end,
            fn -> ObjectStoreX.list(s3, offset: long) end
          ] do
        assert {:error, %Error{reason: :invalid_path, message: message}} = returned(fun)
        assert message =~ "1024"
      end

      assert_raise Error, ~r/1024/, fn -> OSXStream.list_stream(s3, prefix: long) end
      at_limit = String.duplicate("a", 1024)
      assert :ok = ObjectStoreX.put(store, at_limit, "x")
    end
  end

  describe "secrets" do
    # Recognisable fake credentials: none may appear in any message or inspected store.
    @secrets [
      "S3SECRETfake1",
      "AKIDfake2",
      "SESSIONfake3",
      "AZKEYfake4",
      "SASfake5",
      "BEARERfake6",
      "CLIENTSECRETfake7",
      "GCSKEYfake8",
      "URLPASSfake9",
      "QUERYSIGfake10"
    ]

    defp refute_secrets(text) do
      for secret <- @secrets, do: refute(text =~ secret, "#{inspect(text)} shows #{secret}")
    end

    test "wrong-typed credential options are named, their values never shown" do
      cases = [
        {:s3, [bucket: "b", secret_access_key: ~c"S3SECRETfake1"]},
        {:s3, [bucket: "b", access_key_id: {:key, "AKIDfake2"}]},
        {:s3, [bucket: "b", session_token: [~c"SESSIONfake3"]]},
        {:s3, [bucket: "b", secret_access_key: <<"S3SECRETfake1", 255>>]},
        {:azure, [container: "c", access_key: ~c"AZKEYfake4"]},
        {:azure, [container: "c", sas_token: %{token: "SASfake5"}]},
        {:azure, [container: "c", bearer_token: ~c"BEARERfake6"]},
        {:azure, [container: "c", client_secret: ~c"CLIENTSECRETfake7"]},
        {:gcs, [bucket: "b", service_account_key: ~c"GCSKEYfake8"]},
        {:http, [url: ~c"http://user:URLPASSfake9@127.0.0.1/"]},
        {:http, [url: "http://127.0.0.1/", proxy_url: ~c"http://u:URLPASSfake9@proxy/"]},
        {:s3, [{:secret_access_key, "S3SECRETfake1"}, :not_a_pair]},
        {:s3, %{bucket: "b", secret_access_key: "S3SECRETfake1"}}
      ]

      for {provider, opts} <- cases do
        message = assert_invalid(fn -> ObjectStoreX.new(provider, opts) end, "option")
        refute_secrets(message)

        # the option at fault is named
        if is_list(opts) and Keyword.keyword?(opts) do
          {key, _} = List.last(opts)
          assert message =~ inspect(key), message
        end
      end
    end

    test "from_url messages show no user information or query" do
      for url <- [
            "ftp://user:URLPASSfake9@host/x",
            "s3://user:URLPASSfake9@/x?sig=QUERYSIGfake10",
            "abfs://user:URLPASSfake9@/x?sig=QUERYSIGfake10",
            "file://user:URLPASSfake9@"
          ] do
        message = assert_invalid(fn -> ObjectStoreX.from_url(url) end, "URL")
        refute_secrets(message)
      end

      message =
        assert_invalid(fn -> ObjectStoreX.from_url(~c"http://u:URLPASSfake9@h/") end, "url")

      refute_secrets(message)

      message =
        assert_invalid(
          fn -> ObjectStoreX.from_url("s3://b", [{:secret_access_key, "S3SECRETfake1"}, :x]) end,
          "option"
        )

      refute_secrets(message)
    end

    test "inspect/2 of a store shows no credentials" do
      {:ok, s3} =
        ObjectStoreX.new(:s3,
          bucket: "b",
          access_key_id: "AKIDfake2",
          secret_access_key: "S3SECRETfake1",
          session_token: "SESSIONfake3"
        )

      {:ok, azure} =
        ObjectStoreX.new(:azure, account: "acct", container: "c", sas_token: "sv=1&sig=SASfake5")

      {:ok, http} =
        ObjectStoreX.new(:http, url: "http://user:URLPASSfake9@127.0.0.1:1/p?sig=QUERYSIGfake10")

      for store <- [s3, azure, http] do
        refute_secrets(inspect(store, limit: :infinity, structs: true))
      end

      assert inspect(http) =~ "127.0.0.1:1/p"
    end
  end
end
