defmodule ObjectStoreX.StoreTest do
  # Building stores does no network I/O, so every test here runs without servers; the few
  # requests made go to 127.0.0.1:1, where nothing listens.
  use ExUnit.Case, async: true

  alias ObjectStoreX.{Error, Store, TestBackends}

  @secret "SECRETsecret123456"
  @token "TOKENtoken987"

  defp fake_gcs_key, do: TestBackends.gcs_fake_key("http://127.0.0.1:1")

  defp refute_secrets(text) do
    refute text =~ @secret, "the secret key leaked: #{text}"
    refute text =~ @token, "the session token leaked: #{text}"
  end

  describe "new/2" do
    test "memory" do
      assert {:ok, %Store{backend: :memory, bucket: nil, root: nil, prefix: nil}} =
               ObjectStoreX.new(:memory)

      assert {:ok, %Store{backend: :memory, prefix: "a/b"}} =
               ObjectStoreX.new(:memory, prefix: "a/b")
    end

    test "local, creating a missing root" do
      parent = TestBackends.tmp_dir!("root", false)
      on_exit(fn -> File.rm_rf(parent) end)
      root = Path.join(parent, "nested/dir")
      refute File.exists?(parent)

      assert {:ok, %Store{backend: :local, root: ^root, bucket: nil, prefix: nil} = store} =
               ObjectStoreX.new(:local, root: root)

      assert File.dir?(root)
      assert :ok = ObjectStoreX.put(store, "f.txt", "on disk")
      assert File.read!(Path.join(root, "f.txt")) == "on disk"
    end

    test "local with a prefix writes below root/prefix" do
      root = TestBackends.tmp_dir!("root")
      on_exit(fn -> File.rm_rf(root) end)

      assert {:ok, %Store{root: ^root, prefix: "p/q"} = store} =
               ObjectStoreX.new(:local, root: root, prefix: "p/q")

      assert :ok = ObjectStoreX.put(store, "f.txt", "scoped")
      assert File.read!(Path.join([root, "p", "q", "f.txt"])) == "scoped"
      assert {:ok, [%ObjectStoreX.Meta{location: "f.txt"}]} = ObjectStoreX.list(store)
    end

    test "s3" do
      assert {:ok, %Store{backend: :s3, bucket: "my-bucket", prefix: "some/prefix"}} =
               ObjectStoreX.new(:s3,
                 bucket: "my-bucket",
                 region: "us-east-1",
                 endpoint: "http://127.0.0.1:1",
                 access_key_id: "AKID",
                 secret_access_key: @secret,
                 allow_http: true,
                 prefix: "some/prefix"
               )
    end

    test "azure with use_emulator: true" do
      assert {:ok, %Store{backend: :azure, bucket: "container"}} =
               ObjectStoreX.new(:azure,
                 account: "devstoreaccount1",
                 container: "container",
                 use_emulator: true
               )
    end

    test "gcs with a service_account_key" do
      assert {:ok, %Store{backend: :gcs, bucket: "gbucket", prefix: "x"}} =
               ObjectStoreX.new(:gcs,
                 bucket: "gbucket",
                 service_account_key: fake_gcs_key(),
                 prefix: "x"
               )
    end

    test "http" do
      assert {:ok, %Store{backend: :http, bucket: nil}} =
               ObjectStoreX.new(:http, url: "http://127.0.0.1:1/", allow_http: true)
    end

    test "an unknown provider is :invalid_argument" do
      assert {:error, %Error{reason: :invalid_argument, message: m}} = ObjectStoreX.new(:ftp, [])
      assert m =~ "ftp"
      assert {:error, %Error{reason: :invalid_argument}} = ObjectStoreX.new("s3", bucket: "b")
    end

    test "an unknown option is rejected by name" do
      assert {:error, %Error{reason: :invalid_argument, message: m}} =
               ObjectStoreX.new(:memory, root: "/tmp")

      assert m =~ "root"

      assert {:error, %Error{reason: :invalid_argument, message: m}} =
               ObjectStoreX.new(:s3, bucket: "b", not_an_option: 1)

      assert m =~ "not_an_option"

      assert {:error, %Error{reason: :invalid_argument, message: m}} =
               ObjectStoreX.new(:s3, bucket: "b", retry: [max_retires: 1])

      assert m =~ "max_retires"
    end

    test "an option of the wrong type is rejected by name" do
      for {provider, opts, name} <- [
            {:s3, [bucket: "b", region: 5], "region"},
            {:s3, [bucket: "b", allow_http: "yes"], "allow_http"},
            {:s3, [bucket: "b", connect_timeout: -1], "connect_timeout"},
            {:s3, [bucket: "b", retry: [max_retries: -1]], "max_retries"},
            {:memory, [prefix: 5], "prefix"},
            {:local, [root: 5], "root"},
            {:http, [url: :nope], "url"}
          ] do
        assert {:error, %Error{reason: :invalid_argument, message: m}} =
                 ObjectStoreX.new(provider, opts)

        assert m =~ name, "#{inspect(opts)}: #{m}"
      end

      assert {:error, %Error{reason: :invalid_argument}} = ObjectStoreX.new(:memory, :nope)
    end

    test "a missing required option is an error naming it" do
      assert {:error, %Error{reason: :invalid_argument, message: m}} = ObjectStoreX.new(:http, [])
      assert m =~ "url"

      assert {:error, %Error{reason: :invalid_argument, message: m}} =
               ObjectStoreX.new(:local, [])

      assert m =~ "root"
    end
  end

  describe "from_url/2" do
    test "memory://" do
      assert {:ok, %Store{backend: :memory, bucket: nil, prefix: nil}} =
               ObjectStoreX.from_url("memory://")
    end

    test "file:// of a temp dir" do
      dir = TestBackends.tmp_dir!("url")
      on_exit(fn -> File.rm_rf(dir) end)

      assert {:ok, %Store{backend: :local, root: ^dir, bucket: nil} = store} =
               ObjectStoreX.from_url("file://" <> dir)

      assert :ok = ObjectStoreX.put(store, "via-url.txt", "x")
      assert File.exists?(Path.join(dir, "via-url.txt"))
    end

    test "s3://bucket/prefix with endpoint options" do
      assert {:ok, %Store{backend: :s3, bucket: "bucket", prefix: "optional/prefix"}} =
               ObjectStoreX.from_url("s3://bucket/optional/prefix",
                 endpoint: "http://127.0.0.1:1",
                 region: "us-east-1",
                 access_key_id: "AKID",
                 secret_access_key: @secret,
                 allow_http: true
               )

      assert {:ok, %Store{backend: :s3, bucket: "bucket", prefix: nil}} =
               ObjectStoreX.from_url("s3://bucket", region: "us-east-1")
    end

    test "az://container with account options" do
      assert {:ok, %Store{backend: :azure, bucket: "container", prefix: nil}} =
               ObjectStoreX.from_url("az://container",
                 account: "someaccount",
                 access_key: Base.encode64(@secret)
               )

      assert {:ok, %Store{backend: :azure, bucket: "container", prefix: "p"}} =
               ObjectStoreX.from_url("az://container/p",
                 account: "devstoreaccount1",
                 use_emulator: true
               )
    end

    test "gs://bucket with a service_account_key" do
      assert {:ok, %Store{backend: :gcs, bucket: "gbucket", prefix: "data"}} =
               ObjectStoreX.from_url("gs://gbucket/data", service_account_key: fake_gcs_key())
    end

    test "http://127.0.0.1:1/" do
      assert {:ok, %Store{backend: :http, bucket: nil}} =
               ObjectStoreX.from_url("http://127.0.0.1:1/", allow_http: true)
    end

    test "an unknown scheme or a non-URL is :invalid_argument" do
      for url <- ["ftp://host/path", "nonsense", "", "s3://"] do
        assert {:error, %Error{reason: :invalid_argument, message: m}} =
                 ObjectStoreX.from_url(url)

        assert is_binary(m) and m != ""
      end

      assert {:error, %Error{reason: :invalid_argument}} = ObjectStoreX.from_url(:not_a_string)
    end

    test "an unknown option is rejected by name" do
      assert {:error, %Error{reason: :invalid_argument, message: m}} =
               ObjectStoreX.from_url("memory://", colour: "red")

      assert m =~ "colour"
    end
  end

  describe "secrets" do
    setup do
      {:ok, store} =
        ObjectStoreX.new(:s3,
          bucket: "secret-test",
          region: "us-east-1",
          endpoint: "http://127.0.0.1:1",
          access_key_id: "AKIDEXAMPLE",
          secret_access_key: @secret,
          session_token: @token,
          allow_http: true,
          connect_timeout: 500,
          retry: [max_retries: 0]
        )

      %{store: store}
    end

    test "inspect(store) shows the identity and no secret", %{store: store} do
      text = inspect(store)
      assert text =~ "s3"
      assert text =~ "secret-test"
      refute_secrets(text)
      refute_secrets(inspect(store, structs: false))
    end

    test "a refused connection is a retryable :network_error that names no secret",
         %{store: store} do
      for result <- [
            ObjectStoreX.get(store, "some/object"),
            ObjectStoreX.put(store, "some/object", "data"),
            ObjectStoreX.list(store, prefix: "some")
          ] do
        assert {:error, %Error{reason: :network_error} = error} = result
        assert error.retryable
        assert Error.retryable?(error)
        refute_secrets(inspect(error))
        refute_secrets(Exception.message(error))
      end
    end

    test "an error raised by a bang variant names no secret", %{store: store} do
      error = assert_raise Error, fn -> ObjectStoreX.get!(store, "some/object") end
      refute_secrets(Exception.message(error))
      refute_secrets(Exception.format(:error, error, []))
    end

    test "a configuration error names no secret" do
      assert {:error, %Error{} = error} =
               ObjectStoreX.new(:s3,
                 bucket: "b",
                 secret_access_key: @secret,
                 session_token: @token,
                 unknown_thing: 1
               )

      refute_secrets(inspect(error))
      refute_secrets(Exception.message(error))
    end

    test "an Azure SAS token and access key stay hidden" do
      {:ok, sas_store} =
        ObjectStoreX.new(:azure,
          account: "someaccount",
          container: "c",
          sas_token: "sv=2022-11-02&ss=b&sig=#{@token}",
          endpoint: "http://127.0.0.1:1/someaccount",
          allow_http: true,
          connect_timeout: 500,
          retry: [max_retries: 0]
        )

      refute_secrets(inspect(sas_store))
      assert {:error, %Error{} = error} = ObjectStoreX.get(sas_store, "x")
      refute_secrets(inspect(error))

      {:ok, key_store} =
        ObjectStoreX.new(:azure,
          account: "someaccount",
          container: "c",
          access_key: Base.encode64(@secret)
        )

      refute inspect(key_store) =~ Base.encode64(@secret)
    end
  end
end
